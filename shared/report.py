"""The report an operator files: the alert service's API body and the payload dispatch and
notify receive inside `homeward.report.accepted.v1`.

Validation errors raised here carry a stable code (`ReportRule`) so the API can answer in the
caller's language and name the field.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    UrlConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.case_ids import CASE_ID
from shared.datum import DEFAULT_DATUM, Datum
from shared.display import age_on
from shared.idcard import IdNumberError, id_birth_date, normalise_id_number
from shared.phones import PhoneError, parse_phone
from shared.pii import PURGED
from shared.text import STORED, Line, Text
from shared.urls import as_uri

REGION_CODE = r"^[0-9]{6}$"
_FULL_WIDTH_DIGITS = {0xFF10 + d: str(d) for d in range(10)}
CLOCK_SKEW = timedelta(minutes=5)
ADULT_AGE = 18
# A birth date is "in the future" only once it is tomorrow in every zone on earth (UTC+14).
_EARLIEST_ZONE = timedelta(hours=14)


def stored(info: ValidationInfo) -> bool:
    """True when validating a report already accepted (read back from the log)."""
    return bool(info.context and info.context.get("stored"))


def rule(code: str, message: str, **context: object) -> PydanticCustomError:
    """A validation failure with a stable code; the API translates it by code. A `field`
    in the context names the field the operator must correct, relative to the model that
    raised it (shared.web_errors.field_path)."""
    return PydanticCustomError(code, message, dict(context) or None)


def _photo_url(value: HttpUrl, info: ValidationInfo) -> HttpUrl:
    """A photo link as a valid URI (shared.urls.as_uri: a stray `%`, brackets, a second `#`
    encoded, so the CAP message stays valid), never with a user name or password in it: the
    link is published with the alert (`photo_url_credentials`); at most PHOTO_URL_MAX
    characters once encoded (`url_too_long`). A stored link is read as it was stored."""
    if stored(info):
        return value  # a stored link is read as it was stored
    if value.username or value.password:
        raise rule("photo_url_credentials", "a photo link must not contain a user name or "
                   "password: it is published with the alert; give a link without them")
    uri = as_uri(str(value))
    # Encoded (pydantic encodes non-ASCII, as_uri the rest), it must still be readable back
    # under max_length, which pydantic checks on the link as given.
    if len(uri) > PHOTO_URL_MAX:
        raise rule("url_too_long", f"this photo link is longer than {PHOTO_URL_MAX} "
                   "characters once encoded; give a shorter link", max_length=PHOTO_URL_MAX)
    return value if uri == str(value) else HttpUrl(uri)


PHOTO_URL_MAX = 2000
PhotoUrl = Annotated[HttpUrl, UrlConstraints(max_length=PHOTO_URL_MAX,
                                             allowed_schemes=["http", "https"]),
                     AfterValidator(_photo_url)]


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
    name: Line = Field(min_length=1, max_length=50)
    sex: Sex
    birth_date: date | None = None
    age: int | None = Field(default=None, ge=0, le=120)
    height_cm: int | None = Field(default=None, ge=30, le=220)
    weight_kg: float | None = Field(default=None, ge=1, le=200)
    id_number: str | None = Field(
        default=None, max_length=40, description="居民身份证号, GB 11643-1999: checked "
        "(MOD 11-2), stored as 18 characters with an upper-case X; restricted, never public")
    description: Text = Field(default="", max_length=1000)
    photo_urls: list[PhotoUrl] = Field(default_factory=list, max_length=10)

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        try:
            return normalise_id_number(value)
        except IdNumberError as e:
            if stored(info):
                return value  # accepted under an older rule: kept, never refused now
            raise rule(e.code, str(e)) from None

    @model_validator(mode="after")
    def _birth_date_or_age(self, info: ValidationInfo) -> Child:
        """Birth date from the ID number when only that is given; a birth date in the future
        is wrong on `birth_date`; an ID number that encodes another birth date than the one
        given is refused on `id_number` naming both (the operator asks the family again —
        accepting it with a warning would let a mistyped digit into duplicate matching)."""
        if self.id_number is not None and not stored(info):
            encoded = id_birth_date(self.id_number)
            if self.birth_date is None:
                self.birth_date = encoded
            elif encoded != self.birth_date:
                raise rule("id_birth_mismatch", "child.id_number encodes another birth date "
                           "than child.birth_date", field="id_number",
                           encoded=encoded.isoformat(), given=self.birth_date.isoformat())
        if self.birth_date is None and self.age is None:
            raise rule("birth_date_or_age", "give birth_date or age", field="birth_date")
        if self.birth_date is not None and (
                self.birth_date > (datetime.now(UTC) + _EARLIEST_ZONE).date()):
            raise rule("birth_in_future", "child.birth_date is in the future",
                       field="birth_date")
        return self

    def age_at(self, moment: date) -> int:
        """Completed years on `moment`: from birth_date when given, else the age as given."""
        if self.birth_date is None:
            assert self.age is not None
            return self.age
        return age_on(self.birth_date, moment)


class LastSeen(Strict):
    """Where and when the child was last seen. Jurisdiction comes from the most specific part
    given, in this order: `region_code`, then `address`, then `lat`/`lon` (issue 11)."""

    at: AwareDatetime
    address: Text = Field(default="", max_length=200)
    region_code: str | None = Field(
        default=None, pattern=REGION_CODE,
        description="6-digit 行政区划代码; a retired code is mapped to its successor")
    lat: float | None = Field(default=None, ge=-90, le=90, description="degrees, in `datum`")
    lon: float | None = Field(default=None, ge=-180, le=180, description="degrees, in `datum`")
    datum: Datum = Field(
        default=DEFAULT_DATUM,
        description="datum of lat/lon: wgs84 (default: GPS, browsers), gcj02 (高德/腾讯 maps, "
        "most Chinese phone apps) or bd09 (百度). Stored converted to WGS-84.")

    @field_validator("region_code", mode="before")
    @classmethod
    def _ascii_digits(cls, value: Any) -> Any:
        """Full-width digits as a Chinese input method types them (１４０４０３) are the code's
        digits; any other digit (٠-٩, ०-९, ①) is refused by the pattern, naming the field,
        rather than accepted and then unknown."""
        return value.translate(_FULL_WIDTH_DIGITS) if isinstance(value, str) else value

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
    suspect: Text = Field(default="", max_length=500)
    vehicle: Line = Field(default="", max_length=100)
    companions: Text = Field(default="", max_length=500)
    notes: Text = Field(default="", max_length=2000)
    especially_serious: bool = Field(default=False, description="重特大案件: prefecture leads")


class Reporter(Strict):
    """Who called. `phone` is stored in E.164 (what duplicate matching and gateways use),
    `phone_display` in the form a mainland operator dials (shared.phones), both derived from
    what was typed; `phone_ext` is the extension typed with the number (转/分机/ext), else the
    one sent in `phone_ext` (a stored report validates to itself)."""

    name: Line = Field(min_length=1, max_length=50)
    phone: Line = Field(min_length=1, max_length=40, description="any form: 139-0000-1111, "
                        "+86 139 0000 1111, 0355-202-1234, 010-8888 6666 转 801, +852 9123 4567")
    phone_ext: str = Field(default="", pattern=r"^[0-9]{0,6}$", description="derived")
    phone_display: str = Field(default="", max_length=60, description="derived")
    relation: Line = Field(default="", max_length=20)

    @model_validator(mode="before")
    @classmethod
    def _phone(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("phone"), str) \
                or data["phone"] == PURGED:  # the case's key is gone (issue 13)
            return data
        try:
            phone = parse_phone(data["phone"])
        except PhoneError:
            if stored(info):  # accepted under an older rule: kept as it was typed
                return {**data, "phone_display": data.get("phone_display") or data["phone"]}
            raise rule("phone_format", "not a telephone number", field="phone") from None
        extension = phone.extension or str(data.get("phone_ext") or "")
        display = phone.display if phone.extension or not extension else (
            f"{phone.display} 转 {extension}")
        return {**data, "phone": phone.e164, "phone_ext": extension, "phone_display": display}


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
        """Cross-field rules, each naming the field the operator corrects: a time in the
        future is wrong on `last_seen.at`; a last-seen day before a (past) birth date too —
        the birth date is checked on its own first; an adult filed as a child is wrong on
        whichever of birth_date/age gave the age, or on `subject`."""
        now = datetime.now(UTC)
        if self.last_seen.at > now + CLOCK_SKEW:
            raise rule("seen_in_future", "last_seen.at is in the future", field="last_seen.at")
        seen_day = self.last_seen.at.date()
        if self.child.birth_date is not None:
            if self.child.birth_date > seen_day:
                raise rule("before_birth", "last_seen.at is before child.birth_date",
                           field="last_seen.at")
        if self.subject is Subject.child and self.child.age_at(seen_day) >= ADULT_AGE:
            wrong = "child.birth_date" if self.child.birth_date is not None else "child.age"
            raise rule("not_a_minor", "a child report is for someone under 18; a woman "
                       "suspected trafficked is filed with subject=woman", field=wrong)
        if self.subject is Subject.woman and self.child.sex is Sex.male:
            raise rule("woman_sex", "subject=woman is for a woman or girl", field="child.sex")
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


# The field a model-level rule names, relative to the model that raised it, for rules that
# do not carry it in their context (`rule(..., field=...)`).
RULE_FIELDS = {
    "lat_lon_pair": "lat",
    "place_required": "",
    "tip_in_future": "seen_at",
}


class ReportAccepted(BaseModel):
    """Data of `homeward.report.accepted.v1`. The report's place is complete here (region code
    and coordinates derived at intake where the operator gave only part)."""

    @field_validator("report", mode="before")
    @classmethod
    def _as_stored(cls, value: Any) -> Any:
        """A report read back from the log was checked at intake under the rules of its day:
        it is normalised where today's rules can, but never refused by a rule added since
        (an ID number or phone accepted before GB 11643 / libphonenumber checking) — nothing
        accepted is ever lost to a consumer's DLQ."""
        if isinstance(value, dict):
            return ResolvedReport.model_validate(value, context=STORED)
        return value

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

    case_id: str = Field(pattern=CASE_ID)
    seen_at: AwareDatetime
    location: TipPlace
    description: Text = Field(min_length=1, max_length=2000)
    contact: Line = Field(default="", max_length=100)

    @model_validator(mode="after")
    def _not_future(self) -> TipRequest:
        if self.seen_at > datetime.now(UTC) + CLOCK_SKEW:
            raise rule("tip_in_future", "seen_at is in the future")
        return self


class TipPlace(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: Text = Field(default="", max_length=200)


TipRequest.model_rebuild()
