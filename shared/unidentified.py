"""Children met or found without a guardian (来历不明儿童, issue 16): the record police and
mandated reporters file at alert (`POST /api/v1/unidentified-children`) and the payload of
`homeward.unidentified_child.reported.v1` dispatch matches against open cases.

Sources: 002 §三㈢ (来历不明儿童 are registered, reported and compared: "对来历不明儿童进行登记、
报告、关注", "采集DNA…全部入库比对"), 002 §二㈠3. (the mandatory reporting duty, 强制报告: "医护
人员发现疑似拐卖妇女儿童情形的,应当及时制止并向医院和公安机关报告"), 004 (2)(5).

Personal fields (description, photos, circumstances, address) are sealed with the record's own
data key (shared/casekeys.py keyed by record id, `RECORD_FIELDS`); sex, apparent age, height,
region, coordinates and time stay clear: what matching needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from shared.case_ids import UNIDENTIFIED_ID
from shared.pii import PURGED
from shared.report import CLOCK_SKEW, LastSeen, PhotoUrl, Sex, Strict, rule
from shared.text import Line, Text

RECORD_ID = UNIDENTIFIED_ID
MAX_CHILD_AGE = 17  # an apparent age range describes a minor (under 18)


class ApparentAge(Strict):
    """The age the child looks, in completed years (a range: nobody knows it exactly)."""

    min: int = Field(ge=0, le=MAX_CHILD_AGE)
    max: int = Field(ge=0, le=MAX_CHILD_AGE)

    @model_validator(mode="after")
    def _ordered(self) -> ApparentAge:
        if self.max < self.min:
            raise rule("age_range_order", "apparent_age.max is below apparent_age.min",
                       field="max")
        return self


class FoundPlace(LastSeen):
    """Where and when the child was met or found; placed like a report's last-seen place (a
    region code, an address or coordinates, issue 11)."""


class UnidentifiedChildRequest(Strict):
    """Body of `POST /api/v1/unidentified-children`."""

    sex: Sex
    apparent_age: ApparentAge
    height_cm: int | None = Field(default=None, ge=30, le=200, description="measured or "
                                  "estimated, cm")
    description: Text = Field(default="", max_length=1000,
                              description="clothing, features, marks, what the child says")
    photo_urls: list[PhotoUrl] = Field(default_factory=list, max_length=10)
    found: FoundPlace
    circumstances: Text = Field(min_length=1, max_length=2000,
                                description="how the child was met or found, who was with them")
    organisation: Line = Field(default="", max_length=100, description="the reporting "
                               "organisation; taken from the token for a mandated reporter, "
                               "required here for an operator")
    exercise: bool = False

    @model_validator(mode="after")
    def _not_future(self) -> UnidentifiedChildRequest:
        if self.found.at > datetime.now(UTC) + CLOCK_SKEW:
            raise rule("seen_in_future", "found.at is in the future", field="found.at")
        return self


class UnidentifiedChildReported(BaseModel):
    """Data of `homeward.unidentified_child.reported.v1` (alert → dispatch, keyed by record
    id). The place is complete (region code and WGS-84 coordinates derived at intake)."""

    record_id: str
    received_at: datetime
    reporter: str = Field(description="`sub` of the reporter's token")
    reporter_role: str
    organisation: str
    region_code: str = Field(pattern=r"^[0-9]{6}$")
    lat: float
    lon: float
    address: str = ""
    found_at: datetime
    sex: Sex
    age_min: int
    age_max: int
    height_cm: int | None = None
    description: str = ""
    photo_urls: list[str] = Field(default_factory=list)
    circumstances: str = ""
    exercise: bool = False


# Sealed with the record's key (shared.pii.seal, keyed by record id); markers once purged.
RECORD_FIELDS: Mapping[str, Any] = {
    "description": PURGED,
    "photo_urls": [],
    "circumstances": PURGED,
    "address": "",
}


class RecordAnswer(BaseModel):
    record_id: str
    status: str = Field(default="accepted", description="accepted: durable, Kafka may follow")
    region_code: str
    organisation: str


__all__ = ["RECORD_FIELDS", "RECORD_ID", "ApparentAge", "FoundPlace", "RecordAnswer",
           "UnidentifiedChildReported", "UnidentifiedChildRequest"]

