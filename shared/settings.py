"""Settings shared by every service, read from the environment (prefix HOMEWARD_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "homeward-local-development-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEWARD_", extra="ignore")

    environment: Literal["development", "staging", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 0  # 0: the service's default port below
    access_log: bool = True
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path(".data")

    alert_url: str = "http://127.0.0.1:8000"
    dispatch_url: str = "http://127.0.0.1:8001"
    notify_url: str = "http://127.0.0.1:8002"

    # Bearer tokens. HS256 with a shared secret for the local stack; RS256/EdDSA with a public
    # key in production.
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_issuer: str = "homeward"

    # Intake (alert).
    max_body_bytes: int = 64 * 1024
    alert_relay_enabled: bool = Field(
        default=True, description="off only in tests that stop the process before publishing"
    )
    tip_limit_per_client: int = 10
    tip_limit_per_case: int = 120
    tip_window_s: int = 60

    # Notification.
    radius_tiers_km: list[tuple[float, float]] = Field(
        default=[(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)],
        description="(hours since last seen, radius km) pairs; beyond the last: radius_max_km",
    )
    radius_max_km: float = 500.0
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 5.0

    # --- Dispatch (issue 4) -----------------------------------------------------------------
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
    # --- end of dispatch --------------------------------------------------------------------

    # --- notify (issue 5) -------------------------------------------------------------------
    webhook_allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs a subscriber URL may resolve to although private (e.g. 127.0.0.1/32)",
    )
    notify_tier_unit_s: float = Field(
        default=3600.0, description="seconds in one 'hour' of radius_tiers_km (tests shorten it)"
    )
    notify_rebuild_on_empty: bool = Field(
        default=True, description="rebuild notify's Redis state from the topics when it is empty")
    notify_ack_deadline_s: float = 600.0
    notify_ack_repush_max: int = 1
    notify_retry_max_attempts: int = 6
    notify_retry_base_s: float = 2.0
    notify_retry_cap_s: float = 600.0
    notify_per_endpoint_limit: int = 8
    notify_fanout_parallel: int = 512
    notify_tick_s: float = 0.25
    notify_push_max_chars: int = 1000
    notify_official_contact: str = "110（公安机关）"
    notify_sender: str = "homeward@mps.example.cn"
    notify_group_apprise_url: str = Field(
        default="", description="Apprise URL with {phone} for the case group's members (an SMS "
        "gateway); empty: notify does not push to the case group")
    notify_max_consoles: int = Field(
        default=2000, description="hub consoles following their stream at once (per process)")
    # --- end notify ---------------------------------------------------------------------------

    # --- Kafka cluster and principal (issue 14) -------------------------------------------------
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="replicas of every topic: 1 on one local broker, 3 in "
        "production (shared.topic_policy)")
    kafka_min_insync_replicas: int = Field(
        default=1, ge=1, description="min.insync.replicas of every topic: 1 locally, 2 in "
        "production; with acks=all a write needs this many replicas")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str = Field(
        default="", description="this service's Kafka principal (shared.kafka_acl.USERS)")
    kafka_password: SecretStr = SecretStr("")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA certificate of a SASL_SSL listener (Kubernetes: the "
        "Strimzi cluster CA); None: the system's trust store")
    # --- end Kafka cluster ----------------------------------------------------------------------

    @model_validator(mode="after")
    def _refuse_default_secret_outside_development(self) -> Settings:
        if (
            self.environment != "development"
            and self.jwt_algorithm == "HS256"
            and self.jwt_secret == DEV_JWT_SECRET
        ):
            raise ValueError(
                "HOMEWARD_JWT_SECRET is the development default; outside development set a "
                "real secret or a public key (HOMEWARD_JWT_ALGORITHM=RS256/EdDSA)"
            )
        return self

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS exceeds "
                             "HOMEWARD_KAFKA_REPLICATION_FACTOR: no write could ever succeed")
        return self

    def port_for(self, service: str) -> int:
        return self.port or {"alert": 8000, "dispatch": 8001, "notify": 8002}[service]
