"""The case-group rules as data (rules.yaml): models, loading with validation, evaluation.

Pure: no I/O except `load_rules`, which reads the YAML file once at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.report import Kind, Subject

DEFAULT_RULES = Path(__file__).with_name("rules.yaml")

Duty = Literal["investigation", "rescue", "family_liaison"]
Level = Literal["county", "prefecture", "province"]
LEVELS: tuple[Level, ...] = ("county", "prefecture", "province")
PRIORITIES = ("normal", "high", "highest")


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Frozen):
    doc: Literal["000", "001", "002", "003", "004"]
    passage: str = Field(min_length=1)
    quote: str = Field(min_length=4, description="words of the document, found in it verbatim")


class TaskSpec(Frozen):
    title: str
    title_en: str
    duty: Literal["leader", "investigation", "rescue", "family_liaison"]
    due_minutes: float = Field(gt=0)
    sources: list[Citation] = Field(min_length=1)


class When(Frozen):
    subject: list[Subject] | None = None
    kind: list[Kind] | None = None
    minor: bool | None = None
    especially_serious: bool | None = None
    cross_region: bool | None = None


class Then(Frozen):
    mechanisms: list[Literal["rapid_search", "homicide_mechanism"]] = Field(default_factory=list)
    priority: Literal["normal", "high", "highest"] | None = None
    leader_level: Level | None = None
    duties: list[Duty] = Field(default_factory=list)
    supervision: Literal["city", "province"] | None = None
    cooperation: bool = False
    tasks: list[str] = Field(default_factory=list)
    may_add_members: list[Literal["procuratorate"]] = Field(default_factory=list)


class Rule(Frozen):
    id: str = Field(pattern=r"^[a-z_]+$")
    summary: str
    when: When = Field(default_factory=When)
    then: Then
    sources: list[Citation] = Field(min_length=1)


class RuleSet(Frozen):
    name: str
    rules: list[Rule]


class Overlay(RuleSet):
    region_prefix: str = Field(pattern=r"^[0-9]{2,6}$")


class Policy(Frozen):
    documents: dict[str, str]
    tasks: dict[str, TaskSpec]
    base: RuleSet
    overlays: list[Overlay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        for rules in (self.base, *self.overlays):
            ids = [r.id for r in rules.rules]
            if len(ids) != len(set(ids)):
                raise ValueError(f"duplicate rule id in {rules.name}")
            for rule in rules.rules:
                for task in rule.then.tasks:
                    if task not in self.tasks:
                        raise ValueError(f"rule {rule.id}: unknown task {task!r}")
                for c in rule.sources:
                    if c.doc not in self.documents:
                        raise ValueError(f"rule {rule.id}: unknown document {c.doc}")
        return self

    def rules_for(self, region_code: str) -> list[tuple[str, Rule]]:
        """(origin, rule) in force in `region_code`: the base, with overlays applied from the
        shortest matching prefix to the longest (an overlay rule replaces the same id)."""
        chosen: dict[str, tuple[str, Rule]] = {r.id: ("base", r) for r in self.base.rules}
        for overlay in sorted(self.overlays, key=lambda o: len(o.region_prefix)):
            if region_code.startswith(overlay.region_prefix):
                for rule in overlay.rules:
                    chosen[rule.id] = (overlay.region_prefix, rule)
        return list(chosen.values())


class Facts(Frozen):
    """What the rules look at in a report."""

    region_code: str
    subject: Subject
    kind: Kind
    minor: bool
    especially_serious: bool = False
    cross_region: bool = False


class Applied(Frozen):
    rule: str
    origin: str = Field(description="`base` or the overlay's region prefix")
    summary: str
    sources: list[Citation]


class Decision(Frozen):
    mechanisms: list[str]
    priority: str
    leader_level: Level
    duties: list[Duty]
    supervision: Literal["city", "province"] | None
    cooperation: bool
    tasks: list[str]
    may_add_members: list[str]
    applied: list[Applied]


def matches(when: When, facts: Facts) -> bool:
    return all((
        when.subject is None or facts.subject in when.subject,
        when.kind is None or facts.kind in when.kind,
        when.minor is None or facts.minor == when.minor,
        when.especially_serious is None or facts.especially_serious == when.especially_serious,
        when.cross_region is None or facts.cross_region == when.cross_region,
    ))


def _add(items: list[str], more: list[str]) -> None:
    items.extend(x for x in more if x not in items)


def decide(policy: Policy, facts: Facts) -> Decision:
    mechanisms: list[str] = []
    duties: list[str] = []
    tasks: list[str] = []
    may_add: list[str] = []
    priority, level, supervision, cooperation = "normal", "county", None, False
    applied = []
    for origin, rule in policy.rules_for(facts.region_code):
        if not matches(rule.when, facts):
            continue
        then = rule.then
        _add(mechanisms, list(then.mechanisms))
        _add(duties, list(then.duties))
        _add(tasks, then.tasks)
        _add(may_add, list(then.may_add_members))
        if then.priority and PRIORITIES.index(then.priority) > PRIORITIES.index(priority):
            priority = then.priority
        if then.leader_level and LEVELS.index(then.leader_level) > LEVELS.index(level):
            level = then.leader_level
        if then.supervision and (supervision is None or then.supervision == "province"):
            supervision = then.supervision
        cooperation = cooperation or then.cooperation
        applied.append(Applied(rule=rule.id, origin=origin, summary=rule.summary,
                               sources=rule.sources))
    return Decision.model_validate({
        "mechanisms": mechanisms, "priority": priority, "leader_level": level,
        "duties": duties, "supervision": supervision, "cooperation": cooperation,
        "tasks": tasks, "may_add_members": may_add, "applied": applied,
    })


def load_rules(path: Path | None = None) -> Policy:
    """Read and validate the rules; a bad file stops the service at start."""
    raw = yaml.safe_load((path or DEFAULT_RULES).read_text(encoding="utf-8"))
    return Policy.model_validate(raw)
