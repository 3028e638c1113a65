"""Settings of the intake (the alert service): its worker processes sharing one outbox and
relay (issue 15), and the limits on public tips (issues 12, 19)."""

from __future__ import annotations

import os

from pydantic import Field

from shared.settings._base import SettingsGroup

__all__ = ["IntakeSettings"]


class IntakeSettings(SettingsGroup):
    alert_relay_enabled: bool = Field(
        default=True, description="off only in tests that stop the process before publishing"
    )
    alert_workers: int = Field(
        default_factory=lambda: len(os.sched_getaffinity(0)) or 1, ge=1,
        description="intake worker processes of `python -m services.alert`, sharing one "
        "outbox (default: the machine's cores); one of them, elected by a file lock, runs the "
        "relay, the progress consumer and the ops port (issue 15)")
    alert_shared_outbox: bool = Field(
        default=False, description="set by the alert supervisor for its workers: background "
        "duties only in the worker holding <data_dir>/alert-duties.lock")
    alert_relay_poll_s: float = Field(
        default=0.02, gt=0, description="how often the relay looks for rows other worker "
        "processes committed, should their wake be lost (each commit wakes it at once: "
        "services.alert.adapters.relay_wake)")
    tip_limit_per_client: int = 10
    tip_limit_per_case: int = 1000  # all clients together; see tip_limit_per_case_client
    tip_window_s: int = 60

    # --- public tips and faults (issues 12, 19) ----------------------------------------------
    tip_limit_per_case_client: int = Field(
        default=5, description="tips one client (IPv4 address, IPv6 /64) may file on one case "
        "per tip_window_s; tip_limit_per_case is the high cap of all clients together")
    tip_cap_per_case: int = Field(
        default=5000, description="tips kept per case in all (beyond: 429 tip_cap_reached)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs of reverse proxies whose X-Forwarded-For "
        "names the client (any other peer is the client itself)")
    # --- end public tips and faults -----------------------------------------------------------
