"""The amendment of a missing child's details (issue 18 §5, Contract): one body for both
commands — dispatch's `PATCH /api/v1/cases/{case_id}/details` (the commander, once the case
group is formed) and alert's `PATCH /api/v1/reports/{report_id}` (the operators who took the
report, before that) — so the two accept exactly the same fields with the same limits."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.case_events import AMENDABLE_DETAILS
from shared.report import PhotoUrl
from shared.text import Line, Text


class DetailsAmendment(BaseModel):
    """The fields to change (absent: unchanged); at least one. Keys: shared.events.
    AMENDABLE_DETAILS; limits as in the report (shared.report: description ≤ 1000 characters,
    ≤ 10 photo URLs, height 30–220 cm, weight 1–200 kg, suspect ≤ 500, vehicle ≤ 100). An
    unknown field is refused (422 naming it)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    description: Text | None = Field(default=None, max_length=1000,
                                     description="the child's description, clothing included")
    photo_urls: list[PhotoUrl] | None = Field(default=None, max_length=10)
    height_cm: int | None = Field(default=None, ge=30, le=220)
    weight_kg: float | None = Field(default=None, ge=1, le=200)
    suspect: Text | None = Field(default=None, max_length=500)
    vehicle: Line | None = Field(default=None, max_length=100)
    reason: Text = Field(default="", max_length=500, description="why: for the timeline")

    def amended(self) -> dict[str, Any]:
        """The new values, field → JSON value (only the fields sent)."""
        values = self.model_dump(mode="json", exclude={"reason"}, exclude_none=True)
        return {k: v for k, v in values.items() if k in AMENDABLE_DETAILS}
