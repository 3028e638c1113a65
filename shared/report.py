"""The report an operator files: the alert service's API body and the payload dispatch and
notify receive inside `homeward.report.accepted.v1`.

Validation errors raised here carry a stable code (`ReportRule`) so the API can answer in the
caller's language and name the field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    UrlConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

REGION_CODE = r"^\d{6}$"
CLOCK_SKEW = timedelta(minutes=5)
ADULT_AGE = 18

_MOBILE = re.compile(r"^(?:\+?86)?1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}(?:-\d{1,6})?$")


def rule(code: str, message: str, **context: object) -> PydanticCustomError:
    """A validation failure with a stable code; the API translates it by code."""
    return PydanticCustomError(code, message, dict(context) or None)


def normalise_phone(value: str) -> str:
    """Chinese mobile (optionally +86) or landline with area code, e.g. 0355-1234567."""
    compact = re.sub(r"[\s()]", "", value)
    if compact.startswith("0086"):
        compact = "+86" + compact[4:]
    if _MOBILE.match(compact):
        return compact[-11:]
    if _LANDLINE.match(compact):
        return compact
    raise rule("phone_format", "not a Chinese mobile (11 digits, 1[3-9]…) or landline "
               "(area code + number, e.g. 0355-1234567)")


Phone = Annotated[str, Field(min_length=3, max_length=24), AfterValidator(normalise_phone)]
PhotoUrl = Annotated[HttpUrl, UrlConstraints(max_length=2000, allowed_schemes=["http", "https"])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Sex(StrEnum):
    male = "male"
    female = "female"
    unknown = "unknown"


class Kind(StrEnum):
    missing = "missing"
    suspected_abduction = "suspected_abduction"
    stolen = "stolen"  # 盗抢儿童
    runaway = "runaway"
    lost = "lost"


class Subject(StrEnum):
    """Whose disappearance is reported: a child (under 18), or a woman or girl suspected
    trafficked, which also starts rapid search (002 §三㈡)."""

    child = "child"
    woman = "woman"


class Child(Strict):
    name: str = Field(min_length=1, max_length=50)
    sex: Sex
    birth_date: date | None = None
    age: int | None = Field(default=None, ge=0, le=120)
    height_cm: int | None = Field(default=None, ge=30, le=220)
    weight_kg: float | None = Field(default=None, ge=1, le=200)
    id_number: str | None = Field(default=None, pattern=r"^\d{17}[\dXx]$",
                                  description="居民身份证号; restricted, never public")
    description: str = Field(default="", max_length=1000)
    photo_urls: list[PhotoUrl] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _birth_date_or_age(self) -> Child:
        if self.birth_date is None and self.age is None:
            raise rule("birth_date_or_age", "give birth_date or age")
        return self

    def age_at(self, moment: date) -> int:
        if self.birth_date is None:
            assert self.age is not None
            return self.age
        b = self.birth_date
        return moment.year - b.year - ((moment.month, moment.day) < (b.month, b.day))


class LastSeen(Strict):
    at: AwareDatetime
    address: str = Field(default="", max_length=200)
    region_code: str | None = Field(default=None, pattern=REGION_CODE)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    @model_validator(mode="after")
    def _some_place(self) -> LastSeen:
        if (self.lat is None) != (self.lon is None):
            raise rule("lat_lon_pair", "lat and lon go together")
        if self.region_code is None and self.lat is None and not self.address:
            raise rule("place_required", "give region_code, lat/lon or an address")
        return self

    @property
    def located(self) -> bool:
        return self.region_code is not None and self.lat is not None and self.lon is not None


class Circumstances(Strict):
    kind: Kind
    suspect: str = Field(default="", max_length=500)
    vehicle: str = Field(default="", max_length=100)
    companions: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=2000)
    especially_serious: bool = Field(default=False, description="重特大案件: prefecture leads")


class Reporter(Strict):
    name: str = Field(min_length=1, max_length=50)
    phone: Phone
    relation: str = Field(default="", max_length=20)


class Release(Strict):
    public: bool = False


class Report(Strict):
    subject: Subject = Subject.child
    child: Child
    last_seen: LastSeen
    circumstances: Circumstances
    reporter: Reporter
    release: Release = Field(default_factory=Release)
    exercise: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        now = datetime.now(UTC)
        if self.last_seen.at > now + CLOCK_SKEW:
            raise rule("seen_in_future", "last_seen.at is in the future")
        seen_day = self.last_seen.at.date()
        if self.child.birth_date is not None:
            if self.child.birth_date > seen_day:
                raise rule("before_birth", "last_seen.at is before child.birth_date")
        if self.subject is Subject.child and self.child.age_at(seen_day) >= ADULT_AGE:
            raise rule("not_a_minor", "a child report is for someone under 18; a woman "
                       "suspected trafficked is filed with subject=woman")
        if self.subject is Subject.woman and self.child.sex is Sex.male:
            raise rule("woman_sex", "subject=woman is for a woman or girl")
        return self


class ResolvedLastSeen(LastSeen):
    """A last-seen place with every part known (derived at intake where it was missing)."""

    region_code: str = Field(pattern=REGION_CODE)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class ResolvedReport(Report):
    """The report as accepted: what dispatch and notify receive."""

    last_seen: ResolvedLastSeen


# The field a model-level rule names, relative to the model that raised it.
RULE_FIELDS = {
    "birth_date_or_age": "birth_date",
    "lat_lon_pair": "lat",
    "place_required": "",
    "seen_in_future": "last_seen.at",
    "before_birth": "last_seen.at",
    "not_a_minor": "child.birth_date",
    "woman_sex": "child.sex",
    "tip_in_future": "seen_at",
}


class ReportAccepted(BaseModel):
    """Data of `homeward.report.accepted.v1`. The report's place is complete here (region code
    and coordinates derived at intake where the operator gave only part)."""

    report_id: str
    case_id: str
    accepted_at: datetime
    operator: str = Field(description="`sub` of the operator's token")
    operator_region: str = Field(pattern=REGION_CODE)
    report: ResolvedReport
    place_derived: list[str] = Field(default_factory=list,
                                     description="which last_seen parts were derived")


class TipRequest(Strict):
    """A member of the public's tip (`POST /api/v1/tips`)."""

    case_id: str = Field(pattern=r"^\d{6}-\d{8}-[A-Z0-9]{6}$")
    seen_at: AwareDatetime
    location: TipPlace
    description: str = Field(min_length=1, max_length=2000)
    contact: str = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _not_future(self) -> TipRequest:
        if self.seen_at > datetime.now(UTC) + CLOCK_SKEW:
            raise rule("tip_in_future", "seen_at is in the future")
        return self


class TipPlace(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str = Field(default="", max_length=200)


TipRequest.model_rebuild()
