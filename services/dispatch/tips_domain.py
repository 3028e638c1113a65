"""Where a tip places the child, whether it could be so, and the local checks (核查) it starts:
pure rules, no I/O (issue 16 §1–2).

Plausibility of a sighting (`assess`). The child was at the last-seen point at the last-seen time;
a sighting `d` km away `t` hours from then implies a straight-line speed `d / t`. A sighting
is never dropped for it; it is *marked*:

- `near`: within `NEAR_KM` (5 km) — walking distance within the hour, and the slack of a
  phone's position and of an address geocoded to its district;
- `ground`: an implied speed up to `GROUND_KMH` = 350 km/h, the highest commercial speed of
  China's high-speed railways (CR400 复兴号 on 京沪高铁, 350 km/h; TB 10621-2014 《高速铁路设计
  规范》 designs lines for 250–350 km/h). Road is slower (expressways 120 km/h, 《道路交通安全法
  实施条例》 第七十八条), so anything a car or train can do is inside this bound; a straight-line
  speed is a lower bound of the real one (no route is straight), which keeps the rule lenient;
- `air`: faster than that, but reachable by air: the time is at least `AIR_OVERHEAD_H` = 1.5 h
  (getting to an airport, security and boarding; CAAC carriers close check-in 30–45 min before
  departure) plus the distance at `AIR_KMH` = 800 km/h (a jet's typical block speed);
- `implausible`: faster than both — the issue's example, 900 km 30 minutes after last seen.

A sighting *before* the last-seen time is judged the same way (|t|): the child had to get from
there to the last-seen point. Times closer than one minute count as one minute.

The radius shown with a tip is the national platform's (100 km within 1 h, 200 within 2 h,
300 within 3 h, then 500; configuration: Settings.radius_tiers_km), at the time of the push.

Ranking: a sighting by a transport hub's staff (the hub's own token) ranks before every public
tip (`rank_score`): trained staff at a checkpoint, with the hub named.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.events import (
    CASE_CHECK_ASSIGNED,
    CASE_CHECK_OVERDUE,
    CASE_CHECK_REPORTED,
    CASE_TIP_TRIAGED,
    CheckResult,
    Plausibility,
    TipAssessment,
    TipReceived,
)
from shared.regions import RegionIndex, within

NEAR_KM = 5.0
GROUND_KMH = 350.0
AIR_OVERHEAD_H = 1.5
AIR_KMH = 800.0
MIN_HOURS = 1 / 60
HUB_RANK_BOOST = 1e11  # added to a hub sighting's sort score (epoch seconds stay below it)
COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
COMPASS_ZH = {"N": "正北", "NE": "东北", "E": "正东", "SE": "东南", "S": "正南", "SW": "西南",
              "W": "正西", "NW": "西北"}


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, degrees in [0, 360)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


def compass(deg: float) -> str:
    """One of 8 compass points (N, NE, ..., NW) for a bearing in degrees."""
    return COMPASS[int(((deg % 360.0) + 22.5) // 45.0) % 8]


def radius_km(elapsed: timedelta, tiers: list[tuple[float, float]], max_km: float,
              unit_s: float = 3600.0) -> float:
    """The national platform's radius for the time missing: (hours, km) tiers ascending, then
    `max_km`; `unit_s` seconds per hour (tests shorten it)."""
    hours = max(elapsed.total_seconds(), 0.0) / unit_s
    for limit_h, km in tiers:
        if hours <= limit_h:
            return km
    return max_km


def plausibility(distance_km: float, hours: float) -> Plausibility:
    """The mark of a sighting `distance_km` from the last-seen point `hours` from the last-seen
    time (either side); see the module docstring for the thresholds and their sources."""
    hours = max(abs(hours), MIN_HOURS)
    if distance_km <= NEAR_KM:
        return "near"
    if distance_km / hours <= GROUND_KMH:
        return "ground"
    if hours >= AIR_OVERHEAD_H + distance_km / AIR_KMH:
        return "air"
    return "implausible"


def assess(last_lat: float | None, last_lon: float | None, last_seen: datetime,
           tip: TipReceived, now: datetime, tiers: list[tuple[float, float]], max_km: float,
           unit_s: float = 3600.0, county: str = "") -> TipAssessment:
    """The tip relative to the last-seen point (distance km, bearing, minutes, implied km/h),
    its plausibility, the radius now (`now - last_seen`) and whether the tip lies inside it.
    Without the case's coordinates only times, radius and rank are given (plausibility
    `ground`: nothing speaks against it)."""
    radius = radius_km(now - last_seen, tiers, max_km, unit_s)
    elapsed_h = (tip.seen_at - last_seen).total_seconds() / 3600.0
    rank = 0 if tip.source == "hub" else 1
    if last_lat is None or last_lon is None:
        bare = TipAssessment(distance_km=None, bearing_deg=None, elapsed_min=round(
            elapsed_h * 60, 1), speed_kmh=None, plausibility="ground", radius_km=radius,
            inside_radius=None, county=county, rank=rank)
        return bare.model_copy(update={"summary": summary(bare)})
    lat, lon = tip.location.lat, tip.location.lon
    distance = RegionIndex.distance_km(last_lat, last_lon, lat, lon)
    deg = bearing_deg(last_lat, last_lon, lat, lon)
    speed = distance / max(abs(elapsed_h), MIN_HOURS)
    full = TipAssessment(
        distance_km=round(distance, 1), bearing_deg=round(deg, 1), compass=compass(deg),
        elapsed_min=round(elapsed_h * 60, 1), speed_kmh=round(speed, 1),
        plausibility=plausibility(distance, elapsed_h), radius_km=radius,
        inside_radius=distance <= radius, county=county, rank=rank)
    return full.model_copy(update={"summary": summary(full)})


def rank_score(tip: dict[str, Any], received_epoch: float) -> float:
    """Sort score of a tip in its case's list (highest first): hub sightings before all public
    tips, newest first within each."""
    return received_epoch + (HUB_RANK_BOOST if tip.get("source") == "hub" else 0.0)


def summary(assessment: TipAssessment) -> str:
    """The timeline's/push's one-line Chinese account: "东北 12.3 公里，失踪后 45 分钟，
    推送半径 100 公里（半径内）；存疑：隐含速度 1800 km/h"."""
    a = assessment
    parts = []
    if a.distance_km is not None:
        parts.append(f"距最后出现地{COMPASS_ZH.get(a.compass, '')} {a.distance_km:g} 公里")
    if a.elapsed_min is not None:
        minutes = abs(a.elapsed_min)
        when = "失踪前" if a.elapsed_min < 0 else "失踪后"
        parts.append(f"{when} {_duration(minutes)}")
    inside = "" if a.inside_radius is None else ("（半径内）" if a.inside_radius else "（半径外）")
    parts.append(f"当前推送半径 {a.radius_km:g} 公里{inside}")
    mark = ""
    if a.plausibility == "air":
        mark = "；仅乘飞机可能到达"
    elif a.plausibility == "implausible":
        mark = f"；时间距离不合理（隐含速度 {a.speed_kmh or 0:g} km/h），请核实"
    return "，".join(parts) + mark


def _duration(minutes: float) -> str:
    if minutes < 60:
        return f"{minutes:.0f} 分钟"
    return f"{minutes / 60:.1f} 小时"


# --- local checks (核查) ------------------------------------------------------------------------


class LocalCheck(BaseModel):
    """A local-check task (核查) for the county bureau where a sighting places the child
    (003 §三(二): the regions where a child went missing and where they may have been taken
    support each other). Its commanders read the case while it is open."""

    check_id: str
    tip_id: str = ""
    region_code: str = Field(description="the county-level code the check is for")
    organ_code: str = ""
    organ_name: str = ""
    assignee: str = Field(default="", description="the county organ's head (or deputy)")
    phone: str = Field(default="", description="the assignee's phone (told over the group "
                       "channel)")
    due_at: datetime
    assigned_at: datetime
    assigned_by: str = "dispatch"
    status: str = Field(default="open", description="open, reported")
    result: CheckResult | None = None
    note: str = ""
    reported_by: str = ""
    reported_at: datetime | None = None
    overdue_count: int = 0
    last_overdue_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


def next_check_fire(check: LocalCheck, repeat_s: float) -> datetime | None:
    """When an open check's overdue timer goes off next: at the deadline, then every repeat (as
    an overdue task's)."""
    if not check.is_open:
        return None
    if check.overdue_count == 0 or check.last_overdue_at is None:
        return check.due_at
    return check.last_overdue_at + timedelta(seconds=repeat_s)


def open_check_for(checks: list[LocalCheck], region: str) -> LocalCheck | None:
    """An open check whose county lies inside `region` (a commander's scope), if any."""
    return next((c for c in checks if c.is_open and within(region, c.region_code)), None)


SIGHTING_TYPES = frozenset({CASE_TIP_TRIAGED, CASE_CHECK_ASSIGNED, CASE_CHECK_REPORTED,
                            CASE_CHECK_OVERDUE})
VERDICT_ZH = {"credible": "可信", "not_credible": "不可信", "duplicate": "重复"}
RESULT_ZH = {"confirmed": "属实", "not_found": "未发现", "note": "情况说明"}


def apply_sighting(checks: list[LocalCheck], type_: str, details: dict[str, Any], actor: str,
                   at: datetime) -> str:
    """Fold a triage / check event into the case's checks (in place); returns the timeline's
    `what` (who and why are the event's actor and reason)."""
    if type_ == CASE_CHECK_ASSIGNED:
        check = LocalCheck.model_validate(details["check"])
        if all(c.check_id != check.check_id for c in checks):
            checks.append(check)
        return (f"核查 {check.check_id} → {check.organ_name or check.region_code} "
                f"{check.assignee}（线索 {check.tip_id}）")
    if type_ == CASE_CHECK_OVERDUE:
        late = next((c for c in checks if c.check_id == details.get("check_id")), None)
        if late is None:
            return f"核查 {details.get('check_id')} 超时"
        late.overdue_count = int(details.get("count") or late.overdue_count + 1)
        late.last_overdue_at = at
        return f"核查 {late.check_id} {late.organ_name} 超时未反馈 ×{late.overdue_count}"
    if type_ == CASE_CHECK_REPORTED:
        done = next((c for c in checks if c.check_id == details.get("check_id")), None)
        result = str(details.get("result") or "note")
        if done is not None:
            done.status, done.reported_by, done.reported_at = "reported", actor, at
            done.result = result  # type: ignore[assignment]  # validated by the API's Literal
            done.note = str(details.get("note") or "")
        where = done.organ_name if done is not None else ""
        return f"核查 {details.get('check_id')} {where}：{RESULT_ZH.get(result, result)}"
    verdict = str(details.get("verdict") or "")
    what = f"线索 {details.get('tip_id')}：{VERDICT_ZH.get(verdict, verdict)}"
    if details.get("linked_case_id"):
        what += f"，关联案件 {details['linked_case_id']}"
    if details.get("check_id"):
        what += f"，核查 {details['check_id']}"
    return what
