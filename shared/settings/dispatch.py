"""Settings of dispatch (issue 4): its rules and roster, task timers, duplicate detection, its
consumers and replay, tips waiting for their case, local checks of sightings and the matching
of unidentified children (issue 16)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings._base import SettingsGroup

__all__ = ["DispatchSettings"]


class DispatchSettings(SettingsGroup):
    roster_file: Path | None = None
    dispatch_rules_file: Path | None = Field(
        default=None, description="rules YAML; default services/dispatch/rules.yaml")
    dispatch_deadline_scale: float = Field(
        default=1.0, gt=0, description="multiplies the rules' task deadlines (tests shorten)")
    dispatch_overdue_repeat_s: float = Field(
        default=900.0, gt=0, description="an overdue task is reported again this often")
    dispatch_timer_tick_s: float = Field(default=1.0, gt=0)
    dispatch_duplicate_window_h: float = 24.0
    dispatch_duplicate_km: float = Field(
        default=50.0, description="two reports of the same child this close are one case")
    dispatch_stream_maxlen: int = 100_000
    dispatch_consumers: int = Field(
        default=3, ge=1, le=6, description="consumers of homeward.reports.v1 in the dispatch "
        "group (partitions are worked through concurrently, each in order)")
    dispatch_replay_on_empty: bool = Field(
        default=True, description="rebuild Redis from homeward.dispatch.v1 when it is empty")
    # Public tips (issues 12, 19).
    dispatch_tip_park_s: float = Field(
        default=3600.0, gt=0, description="a tip for a case dispatch has not seen yet is held "
        "this long for its case, then listed to admins as unmatched (still held)")

    # --- sightings (issue 16) ------------------------------------------------------------------
    dispatch_check_deadline_s: float = Field(
        default=2 * 3600.0, gt=0, description="a local check (核查) of a sighting in another "
        "county is due this long after it is assigned")
    # --- unidentified children and candidates (issue 16) --------------------------------------
    match_min_score: float = Field(
        default=0.6, ge=0, le=1, description="an unidentified-child record is offered as a "
        "case's candidate at this score or above (services/dispatch/matching.py), unless a "
        "factor excludes it")
    match_record_window_days: float = Field(
        default=365.0, gt=0, description="a new case is compared with unidentified-child "
        "records found at most this many days ago (and not before it went missing)")
