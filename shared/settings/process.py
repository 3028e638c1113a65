"""Settings of the process itself, the same in every service: the environment it runs in, its
ports (API and internal ops port), what it reaches (Kafka bootstrap, Redis, the sibling
services), its resource limits (live streams, request bodies; issue 12) and the time zone
people read times in (issue 11)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from shared.settings._base import SettingsGroup

__all__ = ["ProcessSettings"]


class ProcessSettings(SettingsGroup):
    # Unset means production: the relaxations of development must be asked for by name.
    environment: Literal["development", "staging", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = 0  # 0: the service's default port below
    access_log: bool = True
    keep_alive_s: int = Field(
        default=75, ge=1, description="seconds an idle HTTP/1.1 connection is kept open by "
        "the API server. Longer than clients' and proxies' own idle expiry (httpx 5 s, "
        "typical load balancers 60 s), so the client closes first: a request sent on a "
        "connection the server is closing at that instant fails without being retried "
        "(uvicorn's default, 5 s, equals httpx's)")
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path(".data")

    alert_url: str = "http://127.0.0.1:8000"
    dispatch_url: str = "http://127.0.0.1:8001"
    notify_url: str = "http://127.0.0.1:8002"

    # Every service (issue 12).
    stream_max_per_principal: int = Field(
        default=4, ge=1, description="live streams (SSE) one token subject may hold at once, "
        "per process; more are answered 429")
    stream_max_total: int = Field(
        default=1000, ge=1, description="live streams per process; more are answered 503")
    stream_retry_after_s: int = Field(default=30, ge=1)
    ops_host: str = Field(
        default="127.0.0.1", description="interface of the internal port serving /metrics, "
        "/docs and /openapi.json (never published)")
    ops_port: int = Field(default=0, description="0: the service's API port + 1000")
    metrics_sample_s: float = Field(
        default=10.0, gt=0, description="seconds between samples of the gauges only a query "
        "tells (outbox backlog, consumer lag, DLQ depth, delivery timers; shared.metrics)")
    max_body_bytes: int = 64 * 1024  # every service (issue 12); alert's photos: 5 MiB

    # --- words people read (issue 11) --------------------------------------------------------
    display_timezone: str = Field(
        default="Asia/Shanghai", description="IANA zone every human-readable time is shown in "
        "(push text, SMS/chat, consoles, CAP description); machine fields keep their offset")

    @field_validator("display_timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return name

    def _key_file(self, given: Path | None, local_name: str,
                  variable: str) -> tuple[str, str] | None:
        """A key read from its file: `given` (<variable>_FILE, which must exist) or, in
        development, `<data_dir>/<local_name>` when `make up` wrote it. Returns (key, the
        file's path) or None; raises ValueError for a named file that does not exist."""
        path = given
        if path is None and self.environment == "development":
            path = self.data_dir / local_name
        if path is not None and path.is_file():
            return path.read_text(encoding="utf-8").strip(), str(path)
        if given is not None:
            raise ValueError(f"{variable}_FILE {given} does not exist")
        return None

    def port_for(self, service: str) -> int:
        return self.port or {"alert": 8000, "dispatch": 8001, "notify": 8002}[service]

    def ops_port_for(self, service: str) -> int:
        """The internal port of /metrics, /docs and /openapi.json."""
        return self.ops_port or self.port_for(service) + 1000
