"""The case-group rules of dispatch, free of I/O.

Sources (../shared/seeds/README.md): 一长三包 — the head (or the responsible deputy) of a public
security organ of county level or above leads the case group and answers for investigation,
rescue and family liaison (002 §三㈠, 001 §二(三)); every report of a missing child starts rapid
search at once, minors missing or uncontactable are searched under the homicide-case mechanism
(002 §三㈡).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.events import Leader
from shared.regions import city_of, province_of
from shared.report import Kind, ReportAccepted

DUTIES = ("investigation", "rescue", "family_liaison")


class Person(BaseModel):
    name: str
    title: str
    phone: str = ""
    available: bool = True


class Organ(BaseModel):
    code: str
    name: str
    head: Person
    deputy: Person
    members: dict[str, Person]


class Roster(BaseModel):
    organs: dict[str, Organ]

    def organ_for(self, region_code: str) -> Organ | None:
        """The responsible organ: the county's, else its city's, else its province's."""
        for code in (region_code, city_of(region_code), province_of(region_code)):
            if code in self.organs:
                return self.organs[code]
        return None


class Member(BaseModel):
    duty: str
    name: str
    title: str
    phone: str = ""
    organ_code: str


class TimelineEntry(BaseModel):
    at: datetime
    actor: str
    action: str
    detail: str = ""


class Case(BaseModel):
    case_id: str
    report_id: str
    region_code: str
    status: Literal["opened", "active", "found", "closed"] = "opened"
    priority: str
    mechanisms: list[str]
    leader: Leader | None
    duties: dict[str, Member | None]
    members: list[Member] = Field(default_factory=list)
    tasks: list[dict[str, object]] = Field(default_factory=list)
    escalations: list[dict[str, object]] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    opened_at: datetime
    last_seen_at: datetime
    exercise: bool = False
    child_name: str
    kind: Kind


def mechanisms_for(accepted: ReportAccepted) -> list[str]:
    mechanisms = ["rapid_search"]  # 快速查找机制: at once, no waiting period
    if accepted.report.circumstances.kind in {Kind.missing, Kind.suspected_abduction,
                                              Kind.stolen, Kind.lost}:
        mechanisms.append("homicide_mechanism")  # 命案机制 for missing/uncontactable minors
    return mechanisms


def leader_of(organ: Organ) -> Leader:
    person = organ.head if organ.head.available else organ.deputy
    return Leader(organ_code=organ.code, organ_name=organ.name, name=person.name,
                  title=person.title, phone=person.phone)


def open_case(accepted: ReportAccepted, roster: Roster, now: datetime) -> Case:
    region = accepted.report.last_seen.region_code
    organ = roster.organ_for(region)
    leader = leader_of(organ) if organ else None
    duties: dict[str, Member | None] = {duty: None for duty in DUTIES}
    if organ:
        for duty in DUTIES:
            person = organ.members.get(duty)
            if person:
                duties[duty] = Member(duty=duty, name=person.name, title=person.title,
                                      phone=person.phone, organ_code=organ.code)
    timeline = [TimelineEntry(at=now, actor="dispatch", action="opened",
                              detail=f"report {accepted.report_id} by {accepted.operator}")]
    if leader:
        timeline.append(TimelineEntry(
            at=now, actor="dispatch", action="leader_assigned",
            detail=f"{leader.organ_name} {leader.title} {leader.name} (一长三包)"))
    else:
        timeline.append(TimelineEntry(at=now, actor="dispatch", action="leader_missing",
                                      detail=f"no organ in the roster for {region}"))
    return Case(
        case_id=accepted.case_id,
        report_id=accepted.report_id,
        region_code=region,
        priority="highest",
        mechanisms=mechanisms_for(accepted),
        leader=leader,
        duties=duties,
        members=[m for m in duties.values() if m is not None],
        timeline=timeline,
        opened_at=now,
        last_seen_at=accepted.report.last_seen.at,
        exercise=accepted.report.exercise,
        child_name=accepted.report.child.name,
        kind=accepted.report.circumstances.kind,
    )
