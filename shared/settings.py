"""Settings shared by every service, read from the environment (prefix HOMEWARD_)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Secrets that were ever committed to this repository: anyone can read them, so no environment
# accepts them (issue 12).
PUBLIC_SECRETS = frozenset({"homeward-local-development-secret-change-me",
                            "homeward-local-identity-secret-change-me"})
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key of at least the hash size (256 bits)
LOCAL_SECRET_FILE = "jwt-secret"  # in data_dir; `make up` writes it, shared.tokens reads it
LOCAL_IDENTITY_FILE = "identity-secret"  # in data_dir; `make up` writes it
LOCAL_PII_KEYS_FILE = "pii-master-keys"  # in data_dir; `make up` writes it (issue 13)

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOMEWARD_", extra="ignore")

    # Unset means production: the relaxations of development must be asked for by name.
    environment: Literal["development", "staging", "production"] = "production"
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
    # key in production. There is no default secret: see _require_a_usable_key.
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 key, at least 32 bytes (outside development)")
    jwt_secret_file: Path | None = Field(
        default=None, description="file holding the HS256 key (Docker/Kubernetes secrets; "
        "`make up` writes <data_dir>/jwt-secret)")
    jwt_public_key: str | None = None
    jwt_issuer: str = "homeward"
    jwt_audience: str = Field(default="homeward", description="the `aud` every token must carry")
    jwt_max_ttl_s: int = Field(
        default=12 * 3600, gt=0, description="longest accepted token lifetime (exp - iat), s")

    # --- sign-in through an identity provider (issue 20) ------------------------------------
    oidc_issuer: str = Field(
        default="", description="OpenID Connect issuer whose tokens the services accept, "
        "verified against its JWKS (e.g. http://127.0.0.1:8180/realms/homeward); empty: only "
        "the jwt_* key above. The consoles sign people in here")
    oidc_jwks_url: str = Field(
        default="", description="the issuer's JWKS as the services reach it; empty: the "
        "jwks_uri of the issuer's discovery document (compose: the provider's inside name)")
    oidc_algorithms: list[str] = Field(
        default=["RS256", "ES256", "PS256"], description="signature algorithms accepted from "
        "the provider (never HS256: its keys are public)")
    oidc_jwks_cache_s: float = Field(
        default=300.0, gt=0, description="how long the fetched JWKS is trusted before it is "
        "fetched again; an unknown key id fetches it at once (key rotation), at most every "
        "oidc_jwks_cooldown_s")
    oidc_jwks_cooldown_s: float = Field(default=30.0, ge=0)
    oidc_max_ttl_s: int = Field(
        default=900, gt=0, description="longest accepted lifetime (exp - iat) of a provider's "
        "access token, s: a person disabled at the provider acts at most this long (the local "
        "realm issues 300 s tokens, renewed by the consoles)")
    oidc_clients: dict[str, str] = Field(
        default={"intake": "homeward-intake", "console": "homeward-console",
                 "hub": "homeward-hub"},
        description="console -> the provider's public client id (authorization code + PKCE)")
    csp_connect_src: list[str] = Field(
        default_factory=list, description="more origins the consoles may call (CSP "
        "connect-src); the OIDC issuer's origin is added by itself")
    # --- end of identity provider -------------------------------------------------------------

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

    # Intake (alert).
    max_body_bytes: int = 64 * 1024  # every service (issue 12); alert's photos: 5 MiB
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
        "processes committed (its own process wakes it at once)")
    tip_limit_per_client: int = 10
    tip_limit_per_case: int = 1000  # all clients together; see tip_limit_per_case_client
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
    # Retries (services/notify/delivery_rules.py): at once, then base·2^n with equal jitter up
    # to the cap (seconds, minutes, then hours); a delivery that may die is `dead` after
    # max_attempts tries (about 8 h with these); a hub's push of an active alert never is.
    notify_retry_max_attempts: int = 16
    notify_retry_base_s: float = 2.0
    notify_retry_cap_s: float = 3 * 3600.0
    notify_per_endpoint_limit: int = 8
    notify_fanout_parallel: int = 512
    # Radius selection in pages (issue 18 §6, services/notify/selection.py).
    notify_select_page: int = Field(
        default=5000, ge=0, description="recipients per page handed to the delivery lanes "
        "after the first (which leaves as soon as it holds anyone); 0: everyone at once")
    notify_select_cell_km: float = Field(
        default=100.0, gt=0, description="side of the grid cells a large kind is searched by")
    notify_select_cells_above: int = Field(
        default=20_000, ge=0, description="a kind with more subscribers than this is searched "
        "cell by cell; with fewer, in one query of the whole circle")
    notify_tick_s: float = 0.25
    notify_feed_cancel_keep_s: float = Field(
        default=72 * 3600.0, description="how long the Atom feed keeps the Cancel entry of a "
        "public alert that ended (no personal data), so feed-only readers withdraw it")
    notify_planner: bool = Field(
        default=True, description="consume reports and dispatch's events and plan deliveries; "
        "off: a delivery-only worker process (it consumes the delivery-jobs lanes only)")
    notify_lanes: list[Literal["restricted", "public"]] = Field(
        default=["restricted", "public"], min_length=1, description="the delivery-jobs lanes "
        "(homeward.delivery-jobs.<lane>.v1) this process's delivery workers consume; a process "
        "of its own for `restricted` keeps hub pushes off the CPU a bulk public fan-out is "
        "using (issue 18 §3)")
    notify_push_max_chars: int = 1000
    notify_official_contact: str = "110（公安机关）"
    notify_sender: str = "homeward@mps.example.cn"
    notify_group_apprise_url: str = Field(
        default="", description="Apprise URL with {phone} for the case group's members (an SMS "
        "gateway); empty: notify does not push to the case group")
    # Issue 12: outbound URLs and subscriber secrets.
    notify_apprise_schemes: list[str] = Field(
        default=["json", "jsons", "dingtalk", "wecombot", "feishu", "lark"],
        description="Apprise schemes a subscriber may register: json/jsons go through notify's "
        "own guarded client; dingtalk, wecombot, feishu, lark, tgram are services with a fixed "
        "endpoint (any other scheme is refused)")
    notify_subscriber_keys: list[str] = Field(
        default_factory=list,
        description="AES-256-GCM keys `<key id>:<base64url of 32 bytes>` sealing subscriber "
        "secrets and channel URLs in Kafka and Redis: the first seals, each opens what names "
        "its id (put a new key first to rotate). Empty: development derives one from the JWT "
        "secret; elsewhere notify refuses to start")
    notify_secret_overlap_s: float = Field(
        default=86400.0, ge=0, description="after rotate-secret, pushes are signed with the "
        "old secret too for this long")
    # --- end notify ---------------------------------------------------------------------------

    # --- alerts anyone can verify (issue 17) ---------------------------------------------------
    verify_base_url: str = Field(
        default="", description="public base URL of the verification page printed in every "
        "public text and poster QR code (/verify?code=...); empty: notify_url")
    signing_dir: Path | None = Field(
        default=None, description="directory of the issuer's signing keys, <kid>.key.pem "
        "(ECDSA P-256, PKCS#8) and <kid>.cert.pem; default <data_dir>/signing in development")
    signing_keys: dict[str, Literal["published", "active", "retired"]] = Field(
        default_factory=dict, description="kid -> rotation state; exactly one active. Empty in "
        "development: a key is generated into signing_dir; elsewhere notify refuses to start")
    verify_limit_per_client: int = Field(default=30, ge=1, description="lookups per window")
    verify_window_s: int = Field(default=60, ge=1)
    # --- end verify -----------------------------------------------------------------------------

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

    # --- child identity (issue 19, issue 12) -------------------------------------------------
    identity_secret: str = Field(
        default="", repr=False,
        description="HMAC key of the child-identity keys (shared/identity.py), at least 32 "
        "bytes; the same value in dispatch and notify. No default: set it, or "
        "HOMEWARD_IDENTITY_SECRET_FILE (development: `<data_dir>/identity-secret`, which "
        "`make up` writes)")
    identity_secret_file: Path | None = Field(
        default=None, description="file holding identity_secret (one line)")
    # --- end child identity --------------------------------------------------------------------
    # --- public tips and faults (issues 12, 19) ----------------------------------------------
    tip_limit_per_case_client: int = Field(
        default=5, description="tips one client (IPv4 address, IPv6 /64) may file on one case "
        "per tip_window_s; tip_limit_per_case is the high cap of all clients together")
    tip_cap_per_case: int = Field(
        default=5000, description="tips kept per case in all (beyond: 429 tip_cap_reached)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="CIDRs of reverse proxies whose X-Forwarded-For "
        "names the client (any other peer is the client itself)")
    dispatch_tip_park_s: float = Field(
        default=3600.0, gt=0, description="a tip for a case dispatch has not seen yet is held "
        "this long for its case, then listed to admins as unmatched (still held)")
    # --- end public tips and faults -----------------------------------------------------------

    # --- personal data life cycle (issue 13) ---------------------------------------------------
    pii_master_keys: str = Field(
        default="", repr=False,
        description="master keys wrapping the per-case data keys (shared/pii.py): "
        "`kid:base64url(32 bytes)[,kid:key...]`, the first wraps, all unwrap (rotation: put a "
        "new key first, run `python -m shared.casekeys --rewrap`, then drop the old one). "
        "No default: set it, or "
        "HOMEWARD_PII_MASTER_KEYS_FILE (development: `<data_dir>/pii-master-keys`, which "
        "`make up` writes)")
    pii_master_keys_file: Path | None = None
    purge_grace_s: float = Field(
        default=30 * 86400.0, ge=0, description="seconds after a case ends (found, false "
        "report, closed) until its personal data is purged from every store (tests shorten)")
    outbox_published_grace_s: float = Field(
        default=86400.0, ge=0, description="alert's outbox rows are deleted this long after "
        "they were published (the idempotency answer lives as long)")
    # --- end personal data life cycle ----------------------------------------------------------

    # --- sightings (issue 16) ------------------------------------------------------------------
    dispatch_check_deadline_s: float = Field(
        default=2 * 3600.0, gt=0, description="a local check (核查) of a sighting in another "
        "county is due this long after it is assigned")
    # --- end sightings -------------------------------------------------------------------------
    # --- unidentified children and candidates (issue 16) --------------------------------------
    match_min_score: float = Field(
        default=0.6, ge=0, le=1, description="an unidentified-child record is offered as a "
        "case's candidate at this score or above (services/dispatch/matching.py), unless a "
        "factor excludes it")
    match_record_window_days: float = Field(
        default=365.0, gt=0, description="a new case is compared with unidentified-child "
        "records found at most this many days ago (and not before it went missing)")
    # --- end unidentified children -------------------------------------------------------------

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

    @model_validator(mode="after")
    def _require_a_usable_key(self) -> Settings:
        """No usable default key anywhere (issue 12): HS256 needs HOMEWARD_JWT_SECRET or
        HOMEWARD_JWT_SECRET_FILE of at least 32 bytes (development: the file `make up` wrote
        into the data dir is used when neither is set, and a shorter key only warns);
        RS256/EdDSA need HOMEWARD_JWT_PUBLIC_KEY. A secret ever committed is refused always.
        Raises ValueError (the service does not start)."""
        if self.jwt_algorithm != "HS256":
            if not self.jwt_public_key:
                raise ValueError(f"HOMEWARD_JWT_PUBLIC_KEY is required for {self.jwt_algorithm}")
            return self
        source = "HOMEWARD_JWT_SECRET"
        if self.jwt_secret is None and (found := self._key_file(
                self.jwt_secret_file, LOCAL_SECRET_FILE, source)) is not None:
            self.jwt_secret, source = SecretStr(found[0]), found[1]
        if self.jwt_secret is None:
            raise ValueError(
                "no JWT key: set HOMEWARD_JWT_SECRET (at least 32 random bytes), "
                "HOMEWARD_JWT_SECRET_FILE, or HOMEWARD_JWT_ALGORITHM=RS256/EdDSA with "
                "HOMEWARD_JWT_PUBLIC_KEY; `make up` generates a local one")
        secret = self.jwt_secret.get_secret_value()
        if secret in PUBLIC_SECRETS:
            raise ValueError(f"{source} is a secret published in the repository; generate one "
                             "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            if self.environment != "development":
                raise ValueError(f"{source} is shorter than {MIN_SECRET_BYTES} bytes")
            log.warning("%s is shorter than %d bytes (accepted in development only)", source,
                        MIN_SECRET_BYTES)
        return self

    @model_validator(mode="after")
    def _require_an_identity_secret(self) -> Settings:
        """The child-identity HMAC key (issue 19/12): like the JWT secret, no default anywhere;
        read from HOMEWARD_IDENTITY_SECRET or its _FILE (development: `<data_dir>/identity-secret`
        when present). At least 32 bytes; a secret ever committed is refused. Raises ValueError."""
        source = "HOMEWARD_IDENTITY_SECRET"
        if not self.identity_secret and (found := self._key_file(
                self.identity_secret_file, LOCAL_IDENTITY_FILE, source)) is not None:
            self.identity_secret, source = found
        if not self.identity_secret:
            raise ValueError("no child-identity key: set HOMEWARD_IDENTITY_SECRET (at least 32 "
                             "random bytes) or HOMEWARD_IDENTITY_SECRET_FILE; `make up` "
                             "generates a local one")
        if self.identity_secret in PUBLIC_SECRETS:
            raise ValueError(f"{source} is a secret published in the repository")
        if len(self.identity_secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"{source} is shorter than {MIN_SECRET_BYTES} bytes")
        return self

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError("HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS exceeds "
                             "HOMEWARD_KAFKA_REPLICATION_FACTOR: no write could ever succeed")
        return self

    @model_validator(mode="after")
    def _require_pii_master_keys(self) -> Settings:
        """The master keys of shared/pii.py (issue 13): no default anywhere, like the identity
        secret; parsed here so a malformed key stops the service. Raises ValueError."""
        if not self.pii_master_keys and (found := self._key_file(
                self.pii_master_keys_file, LOCAL_PII_KEYS_FILE,
                "HOMEWARD_PII_MASTER_KEYS")) is not None:
            self.pii_master_keys = found[0]
        if not self.pii_master_keys:
            raise ValueError("no PII master key: set HOMEWARD_PII_MASTER_KEYS "
                             "(kid:base64url of 32 random bytes) or its _FILE; `make up` "
                             "generates a local one")
        from shared.pii import MasterKeys

        MasterKeys.parse(self.pii_master_keys)
        return self

    def port_for(self, service: str) -> int:
        return self.port or {"alert": 8000, "dispatch": 8001, "notify": 8002}[service]

    def ops_port_for(self, service: str) -> int:
        """The internal port of /metrics, /docs and /openapi.json."""
        return self.ops_port or self.port_for(service) + 1000
