"""Issue 15: the alerting rules and the dashboard in deploy/observability parse and name only
series the services export; the metric hooks and the tracing switch behave as documented."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import shared.kafka  # noqa: F401  (registers homeward_messages_handled_total)
from shared import metrics, telemetry

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
RULES = DEPLOY / "prometheus-rules.yaml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"


def exported() -> set[str]:
    """Every sample name the homeward_* metrics of this code base can produce."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum",
                                                                      "_count")}
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("homeward_"):
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def selectors(expr: str) -> list[str]:
    """The metric names `expr` selects (raises ValueError when it does not parse)."""
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_every_documented_series_is_exported() -> None:
    have = exported()
    for name in metrics.SERIES:
        assert {name, name + "_total", name + "_bucket"} & have, name


def test_rules_have_the_shape_prometheus_loads() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    seen = set()
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
        assert group["name"] not in seen
        seen.add(group["name"])
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations",
                                 "keep_firing_for"}, rule
            assert rule["alert"].isidentifier(), rule["alert"]
            assert rule["labels"]["severity"] in {"page", "ticket"}
            assert rule["annotations"]["summary"]
            if "for" in rule:
                assert promql_parser.parse_duration(rule["for"]) > timedelta(0)


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_rule_parses_and_names_only_exported_series(rule: dict[str, Any]) -> None:
    names = selectors(rule["expr"])
    assert names and set(names) <= exported(), (rule["alert"], set(names) - exported())


def test_rules_cover_what_needs_a_human() -> None:
    """Outbox backlog growing, DLQ not empty, a hub delivery retrying past its ack deadline,
    lag rising: each has a rule over its series."""
    by_series = {name for rule in rules() for name in selectors(rule["expr"])}
    for needed in ("homeward_alert_outbox_backlog", "homeward_dlq_depth_messages",
                   "homeward_hub_acks_overdue", "homeward_delivery_retries_in_flight",
                   "homeward_consumer_lag_messages"):
        assert needed in by_series, needed


def test_a_broken_expression_is_refused() -> None:
    """The check can fail: a typo in a rule is caught."""
    with pytest.raises(ValueError):
        selectors("rate(homeward_dlq_messages_total[5m]")
    assert set(selectors("homeward_no_such_series > 0")) - exported()


def test_dashboard_queries_name_only_exported_series_and_show_every_one() -> None:
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = selectors(expr)
        assert names and set(names) <= exported(), (expr, set(names) - exported())
        used |= set(names)
    bare = {n.removesuffix("_bucket") for n in used}
    assert set(metrics.SERIES) <= bare, set(metrics.SERIES) - bare
    uids = json.loads(DASHBOARD.read_text())
    assert uids["uid"] and len({p["id"] for p in uids["panels"]}) == len(uids["panels"])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_first_push_is_observed_once_per_alert_from_its_acceptance() -> None:
    before = sample("homeward_report_to_first_hub_push_seconds_count")
    total = sample("homeward_report_to_first_hub_push_seconds_sum")
    accepted = datetime(2026, 1, 1, tzinfo=UTC)
    metrics.alert_opened("A-unit-1", accepted)
    at = accepted + timedelta(seconds=2)
    sent = sample("homeward_delivery_outcomes_total", status="sent", audience="hub",
                  channel="webhook")
    metrics.delivery_receipt("sent", "hub", "webhook", at, "A-unit-1",
                             (accepted + timedelta(seconds=1)).isoformat())
    metrics.delivery_receipt("sent", "hub", "webhook", at, "A-unit-1", None)  # a second hub
    assert sample("homeward_report_to_first_hub_push_seconds_count") == before + 1
    assert sample("homeward_report_to_first_hub_push_seconds_sum") == pytest.approx(total + 2)
    assert sample("homeward_delivery_outcomes_total", status="sent", audience="hub",
                  channel="webhook") == sent + 2


@pytest.mark.parametrize(("status", "audience", "latency"), [
    ("sent", "media", True), ("retrying", "hub", False), ("dead", "volunteer", False),
    ("ack_overdue", "hub", False)])
def test_receipts_count_by_status_and_audience(status: str, audience: str,
                                               latency: bool) -> None:
    count = sample("homeward_delivery_latency_seconds_count", audience=audience)
    outcomes = sample("homeward_delivery_outcomes_total", status=status, audience=audience,
                      channel="apprise")
    at = datetime.now(UTC)
    metrics.delivery_receipt(status, audience, "apprise", at, "A-x",
                             (at - timedelta(seconds=3)).isoformat())
    assert sample("homeward_delivery_outcomes_total", status=status, audience=audience,
                  channel="apprise") == outcomes + 1
    assert sample("homeward_delivery_latency_seconds_count",
                  audience=audience) == count + (1 if latency else 0)


def test_hub_ack_time_runs_from_the_first_send() -> None:
    count = sample("homeward_hub_ack_seconds_count")
    total = sample("homeward_hub_ack_seconds_sum")
    sent = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    metrics.hub_acknowledged({"sent_at": sent.isoformat(),
                              "at": (sent + timedelta(minutes=5)).isoformat()},
                             sent + timedelta(minutes=7))
    assert sample("homeward_hub_ack_seconds_count") == count + 1
    assert sample("homeward_hub_ack_seconds_sum") == pytest.approx(total + 420)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, []),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
    ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
    ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
    ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
])
def test_tracing_is_off_unless_the_standard_variables_ask(env: dict[str, str],
                                                          expected: list[str]) -> None:
    assert telemetry.exporters(env) == expected


def test_relay_span_continues_the_stored_trace() -> None:
    """The outbox row's traceparent becomes the parent of the relay's publish span, and the
    headers sent name that span (with tracing off the SDK's no-op span keeps the trace id)."""
    stored = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    span = telemetry.relay_span("homeward.reports.v1", "C-1", stored)
    telemetry.end_span(span)
    assert stored["traceparent"].split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
