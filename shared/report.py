"""The report an operator files: the alert service's API body and the payload dispatch and
notify receive inside `homeward.report.accepted.v1`.

Validation errors raised here carry a stable code (`ReportRule`) so the API can answer in the
caller's language and name the field.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

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

from shared.datum import DEFAULT_DATUM, Datum

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
    """Where and when the child was last seen. Jurisdiction comes from the most specific part
    given, in this order: `region_code`, then `address`, then `lat`/`lon` (issue 11)."""

    at: AwareDatetime
    address: str = Field(default="", max_length=200)
    region_code: str | None = Field(
        default=None, pattern=REGION_CODE,
        description="6-digit 行政区划代码; a retired code is mapped to its successor")
    lat: float | None = Field(default=None, ge=-90, le=90, description="degrees, in `datum`")
    lon: float | None = Field(default=None, ge=-180, le=180, description="degrees, in `datum`")
    datum: Datum = Field(
        default=DEFAULT_DATUM,
        description="datum of lat/lon: wgs84 (default: GPS, browsers), gcj02 (高德/腾讯 maps, "
        "most Chinese phone apps) or bd09 (百度). Stored converted to WGS-84.")

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
    """A last-seen place with every part known (derived at intake where it was missing);
    lat/lon in WGS-84 whatever datum was sent."""

    region_code: str = Field(pattern=REGION_CODE)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    datum: Literal[Datum.wgs84] = Datum.wgs84


PlaceSource = Literal["region_code", "address", "coordinates"]


class PlacePart(BaseModel):
    """What one part of the last-seen place says."""

    source: PlaceSource
    region_code: str | None = Field(description="the region that part names (None: none)")
    name: str = ""
    distance_km: float | None = Field(
        default=None, description="coordinates only: km from the point to the chosen area")


class PlaceConflict(BaseModel):
    """The given parts of a place disagree (an address in one county, coordinates more than
    CONFLICT_KM away in another). The report is accepted on `chosen` (the order region code,
    address, coordinates); the commander sees every part and decides."""

    chosen: PlaceSource
    region_code: str
    parts: list[PlacePart]


class RegionCodeReplaced(BaseModel):
    """A retired region code given at intake and the current code it was mapped to."""

    given: str
    given_name: str
    region_code: str
    name: str
    year: int = Field(description="year the given code was retired")
    doc_no: str | None = Field(default=None, description="the approval, e.g. 国函〔2018〕87号")
    resolved_by: Literal["history", "address", "coordinates"] = Field(
        description="history: the only successor; address/coordinates: a split, decided by them")


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
    place_derived: list[str] = Field(
        default_factory=list,
        description="which last_seen parts intake filled in: region_code (from the address or "
        "coordinates, or a retired code's successor), lat_lon (the region's centroid), datum "
        "(lat/lon converted to WGS-84)")
    place_conflict: PlaceConflict | None = Field(
        default=None, description="the given place parts disagree; see PlaceConflict")
    region_code_replaced: RegionCodeReplaced | None = None


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
