"""Dispatch's use cases, composed: one collaborator per job over one write path, dependencies
passed in.

- `caselog` (caselog.py): the write path — plan, publish on homeward.dispatch.v1, fold into the
  Redis projection, one case at a time; `caselog.command` for a command planned elsewhere
  (found.py, amend.py).
- `reports` (reports.py): a report accepted → its case group opened, or linked to the open case
  of the same child.
- `tips` (tips_handlers.py): tips attached (or held until their case is known), sightings
  triaged and checked.
- `commands`, `links`, `availability` (command_handlers.py): the commanders' commands on one
  case, across cases, and on the roster.
- `purger`, `timers` (timers.py): overdue tasks and checks, the purge after the grace, the loop.
- `rebuilder` (rebuild.py): the Redis state replayed from the dispatch topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.dispatch.adapters import CaseRepository
from services.dispatch.caselog import CaseLog
from services.dispatch.command_handlers import Availability, Commands, Links
from services.dispatch.domain import Case
from services.dispatch.rebuild import Rebuild
from services.dispatch.reports import Reports
from services.dispatch.roster import Roster
from services.dispatch.rules import Policy, load_rules
from services.dispatch.timers import Purger, Timers
from services.dispatch.tips_handlers import SightingRules, Tips
from shared.casekeys import CaseKeys
from shared.kafka import Bootstrap, EventPublisher

__all__ = ["Dispatch"]


@dataclass
class Dispatch:
    """The dispatch service's settings and shared state, and the collaborators built on them.
    `keys` seals personal fields (issue 13); `sightings` are the sighting rules (issue 16).
    Use cases kept in their own modules (issue 16, found.py) hook in: `after_open` is called
    with a case just opened (outside its lock), `after_purge` with a case just purged (as
    before the purge), `after_rebuild` after a rebuild of the case log."""

    cases: CaseRepository
    roster: Roster
    publisher: EventPublisher
    policy: Policy = field(default_factory=load_rules)
    deadline_scale: float = 1.0
    duplicate_km: float = 50.0
    identity_secret: str = "homeward-local-identity-secret-change-me"
    claim_wait_s: float = 10.0
    keys: CaseKeys | None = None
    sightings: SightingRules = field(default_factory=SightingRules)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    after_open: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)
    after_purge: list[Callable[[Case], Awaitable[None]]] = field(default_factory=list)
    after_rebuild: list[Callable[[Bootstrap], Awaitable[object]]] = field(default_factory=list)
    caselog: CaseLog = field(init=False)
    reports: Reports = field(init=False)
    tips: Tips = field(init=False)
    commands: Commands = field(init=False)
    links: Links = field(init=False)
    availability: Availability = field(init=False)
    purger: Purger = field(init=False)
    timers: Timers = field(init=False)
    rebuilder: Rebuild = field(init=False)

    def __post_init__(self) -> None:
        # The hook lists are shared, not copied: found.register appends to them afterwards.
        self.caselog = CaseLog(self.cases, self.publisher, self.keys, self.clock)
        self.reports = Reports(self.caselog, self.policy, self.roster, self.deadline_scale,
                               self.duplicate_km, self.identity_secret, self.claim_wait_s,
                               self.after_open)
        self.tips = Tips(self.caselog, self.roster, self.sightings)
        self.commands = Commands(self.caselog, self.roster)
        self.links = Links(self.caselog, self.policy, self.roster, self.deadline_scale)
        self.availability = Availability(self.caselog, self.roster)
        self.purger = Purger(self.caselog, self.after_purge)
        self.timers = Timers(self.caselog, self.purger, self.tips)
        self.rebuilder = Rebuild(self.caselog, self.roster, self.after_rebuild)
