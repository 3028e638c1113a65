"""shared.settings split into one group per concern (pydantic-settings models combined into the
one `Settings`): every environment variable of the single class it was still loads, into the
same field, with the same parsing and the same checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.settings import Settings

# Every variable the single Settings class read before the split (103 fields), spelled out so
# a renamed or dropped field fails here.
ENV_NAMES = [
    'HOMEWARD_ACCESS_LOG', 'HOMEWARD_ALERT_RELAY_ENABLED', 'HOMEWARD_ALERT_RELAY_POLL_S',
    'HOMEWARD_ALERT_SHARED_OUTBOX', 'HOMEWARD_ALERT_URL', 'HOMEWARD_ALERT_WORKERS',
    'HOMEWARD_CSP_CONNECT_SRC', 'HOMEWARD_DATA_DIR', 'HOMEWARD_DISPATCH_CHECK_DEADLINE_S',
    'HOMEWARD_DISPATCH_CONSUMERS', 'HOMEWARD_DISPATCH_DEADLINE_SCALE',
    'HOMEWARD_DISPATCH_DUPLICATE_KM', 'HOMEWARD_DISPATCH_DUPLICATE_WINDOW_H',
    'HOMEWARD_DISPATCH_OVERDUE_REPEAT_S', 'HOMEWARD_DISPATCH_REPLAY_ON_EMPTY',
    'HOMEWARD_DISPATCH_RULES_FILE', 'HOMEWARD_DISPATCH_STREAM_MAXLEN',
    'HOMEWARD_DISPATCH_TIMER_TICK_S', 'HOMEWARD_DISPATCH_TIP_PARK_S', 'HOMEWARD_DISPATCH_URL',
    'HOMEWARD_DISPLAY_TIMEZONE', 'HOMEWARD_ENVIRONMENT', 'HOMEWARD_HOST',
    'HOMEWARD_IDENTITY_SECRET', 'HOMEWARD_IDENTITY_SECRET_FILE', 'HOMEWARD_JWT_ALGORITHM',
    'HOMEWARD_JWT_AUDIENCE', 'HOMEWARD_JWT_ISSUER', 'HOMEWARD_JWT_MAX_TTL_S',
    'HOMEWARD_JWT_PUBLIC_KEY', 'HOMEWARD_JWT_SECRET', 'HOMEWARD_JWT_SECRET_FILE',
    'HOMEWARD_KAFKA_BOOTSTRAP', 'HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS', 'HOMEWARD_KAFKA_PASSWORD',
    'HOMEWARD_KAFKA_REPLICATION_FACTOR', 'HOMEWARD_KAFKA_SASL_MECHANISM',
    'HOMEWARD_KAFKA_SECURITY_PROTOCOL', 'HOMEWARD_KAFKA_SSL_CAFILE', 'HOMEWARD_KAFKA_USERNAME',
    'HOMEWARD_KEEP_ALIVE_S',
    'HOMEWARD_MATCH_MIN_SCORE', 'HOMEWARD_MATCH_RECORD_WINDOW_DAYS', 'HOMEWARD_MAX_BODY_BYTES',
    'HOMEWARD_METRICS_SAMPLE_S', 'HOMEWARD_NOTIFY_ACK_DEADLINE_S',
    'HOMEWARD_NOTIFY_ACK_REPUSH_MAX', 'HOMEWARD_NOTIFY_APPRISE_SCHEMES',
    'HOMEWARD_NOTIFY_FANOUT_PARALLEL', 'HOMEWARD_NOTIFY_FEED_CANCEL_KEEP_S',
    'HOMEWARD_NOTIFY_GROUP_APPRISE_URL', 'HOMEWARD_NOTIFY_LANES',
    'HOMEWARD_NOTIFY_OFFICIAL_CONTACT', 'HOMEWARD_NOTIFY_PER_ENDPOINT_LIMIT',
    'HOMEWARD_NOTIFY_PLANNER', 'HOMEWARD_NOTIFY_PUSH_MAX_CHARS',
    'HOMEWARD_NOTIFY_REBUILD_ON_EMPTY', 'HOMEWARD_NOTIFY_RETRY_BASE_S',
    'HOMEWARD_NOTIFY_RETRY_CAP_S', 'HOMEWARD_NOTIFY_RETRY_MAX_ATTEMPTS',
    'HOMEWARD_NOTIFY_SECRET_OVERLAP_S', 'HOMEWARD_NOTIFY_SELECT_CELLS_ABOVE',
    'HOMEWARD_NOTIFY_SELECT_CELL_KM', 'HOMEWARD_NOTIFY_SELECT_PAGE', 'HOMEWARD_NOTIFY_SENDER',
    'HOMEWARD_NOTIFY_SUBSCRIBER_KEYS', 'HOMEWARD_NOTIFY_TICK_S', 'HOMEWARD_NOTIFY_TIER_UNIT_S',
    'HOMEWARD_NOTIFY_URL', 'HOMEWARD_OIDC_ALGORITHMS', 'HOMEWARD_OIDC_CLIENTS',
    'HOMEWARD_OIDC_ISSUER', 'HOMEWARD_OIDC_JWKS_CACHE_S', 'HOMEWARD_OIDC_JWKS_COOLDOWN_S',
    'HOMEWARD_OIDC_JWKS_URL', 'HOMEWARD_OIDC_MAX_TTL_S', 'HOMEWARD_OPS_HOST', 'HOMEWARD_OPS_PORT',
    'HOMEWARD_OUTBOX_PUBLISHED_GRACE_S', 'HOMEWARD_PII_MASTER_KEYS',
    'HOMEWARD_PII_MASTER_KEYS_FILE', 'HOMEWARD_PORT', 'HOMEWARD_PURGE_GRACE_S',
    'HOMEWARD_RADIUS_MAX_KM', 'HOMEWARD_RADIUS_TIERS_KM', 'HOMEWARD_REDIS_URL',
    'HOMEWARD_ROSTER_FILE', 'HOMEWARD_SIGNING_DIR', 'HOMEWARD_SIGNING_KEYS',
    'HOMEWARD_STREAM_MAX_PER_PRINCIPAL', 'HOMEWARD_STREAM_MAX_TOTAL',
    'HOMEWARD_STREAM_RETRY_AFTER_S', 'HOMEWARD_TIP_CAP_PER_CASE', 'HOMEWARD_TIP_LIMIT_PER_CASE',
    'HOMEWARD_TIP_LIMIT_PER_CASE_CLIENT', 'HOMEWARD_TIP_LIMIT_PER_CLIENT',
    'HOMEWARD_TIP_WINDOW_S', 'HOMEWARD_TRUSTED_PROXIES', 'HOMEWARD_VERIFY_BASE_URL',
    'HOMEWARD_VERIFY_LIMIT_PER_CLIENT', 'HOMEWARD_VERIFY_WINDOW_S',
    'HOMEWARD_WEBHOOK_ALLOW_NETWORKS', 'HOMEWARD_WEBHOOK_ALLOW_PRIVATE',
    'HOMEWARD_WEBHOOK_TIMEOUT_S',
]


def test_every_variable_of_the_single_class_is_still_a_field() -> None:
    assert sorted(f"HOMEWARD_{name.upper()}" for name in Settings.model_fields) == ENV_NAMES


# One variable or more of each group: (variable, its text, field, the value read).
LOADED = [
    ("HOMEWARD_ENVIRONMENT", "staging", "environment", "staging"),
    ("HOMEWARD_OPS_PORT", "9100", "ops_port", 9100),
    ("HOMEWARD_DATA_DIR", "/srv/homeward", "data_dir", "/srv/homeward"),
    ("HOMEWARD_DISPLAY_TIMEZONE", "Asia/Urumqi", "display_timezone", "Asia/Urumqi"),
    ("HOMEWARD_STREAM_MAX_TOTAL", "7", "stream_max_total", 7),
    ("HOMEWARD_JWT_MAX_TTL_S", "60", "jwt_max_ttl_s", 60),
    ("HOMEWARD_OIDC_CLIENTS", '{"intake": "x"}', "oidc_clients", {"intake": "x"}),
    ("HOMEWARD_CSP_CONNECT_SRC", '["https://a.example"]', "csp_connect_src",
     ["https://a.example"]),
    ("HOMEWARD_PURGE_GRACE_S", "5", "purge_grace_s", 5.0),
    ("HOMEWARD_KAFKA_USERNAME", "alert", "kafka_username", "alert"),
    ("HOMEWARD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "kafka_security_protocol", "SASL_SSL"),
    ("HOMEWARD_ALERT_WORKERS", "3", "alert_workers", 3),
    ("HOMEWARD_TRUSTED_PROXIES", '["10.0.0.0/8"]', "trusted_proxies", ["10.0.0.0/8"]),
    ("HOMEWARD_TIP_CAP_PER_CASE", "9", "tip_cap_per_case", 9),
    ("HOMEWARD_DISPATCH_CONSUMERS", "2", "dispatch_consumers", 2),
    ("HOMEWARD_DISPATCH_TIP_PARK_S", "10", "dispatch_tip_park_s", 10.0),
    ("HOMEWARD_MATCH_MIN_SCORE", "0.7", "match_min_score", 0.7),
    ("HOMEWARD_RADIUS_TIERS_KM", "[[0.5, 10]]", "radius_tiers_km", [(0.5, 10.0)]),
    ("HOMEWARD_NOTIFY_LANES", '["public"]', "notify_lanes", ["public"]),
    ("HOMEWARD_NOTIFY_SELECT_PAGE", "0", "notify_select_page", 0),
    ("HOMEWARD_SIGNING_KEYS", '{"k1": "active"}', "signing_keys", {"k1": "active"}),
    ("HOMEWARD_VERIFY_WINDOW_S", "120", "verify_window_s", 120),
]


@pytest.mark.parametrize(("variable", "text", "field", "expected"), LOADED,
                         ids=[case[0] for case in LOADED])
def test_a_variable_of_each_group_loads_into_its_field(
        monkeypatch: pytest.MonkeyPatch, variable: str, text: str, field: str,
        expected: Any) -> None:
    monkeypatch.setenv(variable, text)
    value = getattr(Settings(), field)
    assert (str(value) if field == "data_dir" else value) == expected


# The checks of each group still stop the one class: (variables, words of the error).
REFUSED = [
    ({"HOMEWARD_DISPLAY_TIMEZONE": "Mars/Base"}, "IANA time zone"),
    ({"HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS": "2"}, "HOMEWARD_KAFKA_MIN_INSYNC_REPLICAS exceeds"),
    ({"HOMEWARD_DISPATCH_CONSUMERS": "7"}, "dispatch_consumers"),
    ({"HOMEWARD_JWT_SECRET": "short"}, "HOMEWARD_JWT_SECRET is shorter than 32 bytes"),
    ({"HOMEWARD_JWT_ALGORITHM": "RS256"}, "HOMEWARD_JWT_PUBLIC_KEY is required"),
    ({"HOMEWARD_IDENTITY_SECRET": "short"}, "HOMEWARD_IDENTITY_SECRET is shorter"),
    ({"HOMEWARD_PII_MASTER_KEYS": "not-a-key"}, "a master key is"),
]


@pytest.mark.parametrize(("variables", "words"), REFUSED, ids=[next(iter(c[0])) for c in REFUSED])
def test_each_groups_checks_still_refuse(monkeypatch: pytest.MonkeyPatch,
                                         variables: dict[str, str], words: str) -> None:
    monkeypatch.setenv("HOMEWARD_ENVIRONMENT", "production")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=words):
        Settings()


def test_the_token_key_is_checked_before_the_other_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """With several keys wrong, the error names the token key first, as before the split."""
    monkeypatch.setenv("HOMEWARD_JWT_SECRET", "short")
    monkeypatch.setenv("HOMEWARD_IDENTITY_SECRET", "short")
    with pytest.raises(ValidationError, match="HOMEWARD_JWT_SECRET"):
        Settings(environment="production")
