"""The report an operator files: the alert service's API body and the payload dispatch and
notify receive inside `homeward.report.accepted.v1`."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

REGION_CODE = r"^\d{6}$"


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


class Child(Strict):
    name: str = Field(min_length=1, max_length=50)
    sex: Sex
    birth_date: date | None = None
    age: int | None = Field(default=None, ge=0, le=17)
    height_cm: int | None = Field(default=None, ge=30, le=220)
    weight_kg: float | None = Field(default=None, ge=1, le=200)
    description: str = Field(default="", max_length=1000)
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=10)


class LastSeen(Strict):
    at: AwareDatetime
    address: str = Field(default="", max_length=200)
    region_code: str = Field(pattern=REGION_CODE)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Circumstances(Strict):
    kind: Kind
    suspect: str = Field(default="", max_length=500)
    vehicle: str = Field(default="", max_length=100)
    companions: str = Field(default="", max_length=500)
    notes: str = Field(default="", max_length=2000)


class Reporter(Strict):
    name: str = Field(min_length=1, max_length=50)
    phone: str = Field(min_length=5, max_length=20)
    relation: str = Field(default="", max_length=20)


class Release(Strict):
    public: bool = False


class Report(Strict):
    child: Child
    last_seen: LastSeen
    circumstances: Circumstances
    reporter: Reporter
    release: Release = Field(default_factory=Release)
    exercise: bool = False


class ReportAccepted(BaseModel):
    """Data of `homeward.report.accepted.v1`."""

    report_id: str
    case_id: str
    accepted_at: datetime
    operator: str = Field(description="`sub` of the operator's token")
    operator_region: str = Field(pattern=REGION_CODE)
    report: Report
