"""Settings of notify (issue 5): the alert radius growing with time, subscriber webhooks and
their guarded outbound calls (issue 12), retries and acknowledgements, radius selection in pages
and the delivery lanes (issue 18), and the words every push carries."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.settings._base import SettingsGroup

__all__ = ["NotifySettings"]


class NotifySettings(SettingsGroup):
    radius_tiers_km: list[tuple[float, float]] = Field(
        default=[(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)],
        description="(hours since last seen, radius km) pairs; beyond the last: radius_max_km",
    )
    radius_max_km: float = 500.0
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 5.0
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
