"""Payloads of sightings (issue 16 §1–3): a tip as the public or a hub filed it (alert →
dispatch), and where and when dispatch judged it places the child, with the verdicts and check
results the commander and the checking county give. The event type names are shared.events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["CheckResult", "Plausibility", "TipAssessment", "TipLocation", "TipReceived",
           "TipVerdict"]


class TipLocation(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str = Field(default="", max_length=200)


class TipReceived(BaseModel):
    """Data of `homeward.tip.received.v1` (alert → dispatch, keyed by case id)."""

    tip_id: str
    case_id: str
    seen_at: datetime
    location: TipLocation
    description: str
    contact: str = ""
    received_at: datetime
    source: Literal["public", "hub"] = "public"
    hub_id: str | None = None


TipVerdict = Literal["credible", "not_credible", "duplicate"]
CheckResult = Literal["confirmed", "not_found", "note"]
Plausibility = Literal["near", "ground", "air", "implausible"]


class TipAssessment(BaseModel):
    """Where and when a tip places the child relative to the last-seen point, as dispatch
    computed it when the tip was attached (`details.assessment` of `homeward.case.tip_attached.v1`;
    rules and their sources: services/dispatch/tips_domain.py)."""

    distance_km: float | None = Field(description="great-circle distance from the last-seen "
                                      "point, km; None when the case has no coordinates")
    bearing_deg: float | None = Field(description="initial bearing from the last-seen point, "
                                      "degrees clockwise from north")
    compass: str = Field(default="", description="the bearing as one of 8 compass points "
                         "(N, NE, ... NW)")
    elapsed_min: float | None = Field(description="minutes from last seen to the sighting "
                                      "(negative: seen before)")
    speed_kmh: float | None = Field(description="straight-line speed the sighting implies")
    plausibility: Plausibility = Field(description="near: within walking/GPS slack; ground: "
                                       "reachable by road or rail; air: only by air; "
                                       "implausible: too fast for any (marked, never dropped)")
    radius_km: float = Field(description="the alert radius at the time of the push")
    inside_radius: bool | None = None
    county: str = Field(default="", description="county-level code where the tip lies, '' "
                        "when outside every county")
    rank: int = Field(default=1, description="0 for hub sightings (first), 1 otherwise")
    summary: str = Field(default="", description="the above in one Chinese line, as pushed")
