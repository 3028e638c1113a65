"""What a case holds of children found elsewhere (issue 16): the unidentified-child records scored
as candidates, and the DNA sample records (references and statuses only — no genetic data).

Plain models with no I/O and no import of the case model, so services/dispatch/domain.py can
hold them; the commands that change them are in candidates.py and dna.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.dispatch.matching import Reason

CandidateStatus = Literal["proposed", "confirmed"]


class Candidate(BaseModel):
    """An unidentified-child record that may be this case's child, with the rule's score and
    reasons (services/dispatch/matching.py). `region_code` is the record's: its commanders see
    the candidate too."""

    record_id: str
    region_code: str
    organisation: str = ""
    found_at: datetime
    sex: str
    age_min: int
    age_max: int
    height_cm: int | None = None
    score: float
    reasons: list[Reason] = Field(default_factory=list)
    distance_km: float
    hours_since: float
    status: CandidateStatus = "proposed"
    proposed_at: datetime
    confirmed_at: datetime | None = None
    confirmed_by: str = ""
    confirmed_via: Literal["", "commander", "dna"] = ""


DnaStatus = Literal["collected", "entered", "compared", "match", "no_match"]
# collected → entered into the national anti-trafficking DNA database → compared → match / no
# match (001 §二（三）, 004 (2)(5): "采集…血样，检验录入全国打拐DNA信息库").
NEXT_STATUS: dict[str, frozenset[str]] = {
    "collected": frozenset({"entered"}),
    "entered": frozenset({"compared"}),
    "compared": frozenset({"match", "no_match"}),
    "match": frozenset(),
    "no_match": frozenset(),
}


class DnaStep(BaseModel):
    status: DnaStatus
    at: datetime
    by: str
    note: str = ""


class DnaSample(BaseModel):
    """One sample: whose (the family's, or the found child's), who took it, when, where, the
    lab's reference and where it stands. No genetic data is ever stored."""

    sample_id: str
    subject: Literal["family", "found_child"]
    donor: str = Field(default="", description="relation to the child: 父亲, 母亲, 本人 …")
    taken_by: str
    taken_at: datetime
    place: str
    lab_reference: str
    record_id: str | None = Field(default=None, description="found_child: the "
                                  "unidentified-child record the child was registered as")
    status: DnaStatus = "collected"
    history: list[DnaStep] = Field(default_factory=list)
