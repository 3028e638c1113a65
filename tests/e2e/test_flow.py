"""The walking skeleton end to end: three service processes, real Kafka, real Redis, local
webhook sinks."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import Webhook

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared import metrics, topics
from shared.auth import Role, mint_token
from shared.settings import Settings
from tests.helpers import WebhookSink, another_child, eventually, report_body
from tests.otlp import OtlpReceiver

pytestmark = pytest.mark.e2e

LAST_SEEN = (36.19, 113.11)  # 长治市潞州区


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
          otlp: OtlpReceiver) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    # Traced (issue 15): the services export their spans to the in-process OTLP receiver.
    # Gauges sampled every second (shared.metrics), so the scrape test need not wait long.
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir, ports,
                           {**otlp.env(), "HOMEWARD_METRICS_SAMPLE_S": "1"})
    yield procs
    for proc in procs.values():
        proc.stop()


def token(role: Role, region: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(Settings(), role, region)}"}


async def test_report_reaches_case_group_and_near_hub_only(
    stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch, notify = stack["alert"].url, stack["dispatch"].url, stack["notify"].url
    async with httpx.AsyncClient(timeout=10) as http:
        for proc in stack.values():
            for path in ("/healthz", "/readyz"):
                assert (await http.get(proc.url + path)).status_code == 200, proc.url + path
            # The internal port (issue 12): metrics there, not on the API port.
            assert (await http.get(proc.ops_url + "/metrics")).status_code == 200, proc.ops_url
            assert (await http.get(proc.url + "/metrics")).status_code == 404, proc.url

        with WebhookSink() as near_sink, WebhookSink() as far_sink:
            admin = token(Role.admin, "000000")
            # 30 km north of the last-seen point, and 300 km north.
            near = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
                "kind": "hub", "name": "长治北站", "location": {"lat": LAST_SEEN[0] + 0.27,
                                                            "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": near_sink.url}})
            assert near.status_code == 201, near.text
            far = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
                "kind": "hub", "name": "石家庄站", "location": {"lat": LAST_SEEN[0] + 2.7,
                                                            "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": far_sink.url}})
            assert far.status_code == 201, far.text

            posted = await http.post(f"{alert}/api/v1/reports", json=report_body(**another_child()),
                                     headers=token(Role.operator, "140403"))
            assert posted.status_code == 202, posted.text
            case_id = posted.json()["case_id"]

            def pushes(sink: WebhookSink) -> list[dict[str, object]]:
                # Earlier tests' reports are on the topic too; this test counts its own case.
                return [r for r in sink.requests
                        if json.loads(r["body"]).get("case_id") == case_id]

            # (The stack first catches up what earlier modules left on the session broker.)
            await eventually(lambda: asyncio.sleep(0, pushes(near_sink)), timeout=90)
            await asyncio.sleep(3)  # time for any duplicate or stray push to arrive
            # The Alert, and an Update carrying the leader when dispatch named the leader
            # after the first push (issue 18 §5): one webhook-id each, nothing twice.
            got = pushes(near_sink)
            kinds = [json.loads(r["body"])["msg_type"] for r in got]
            assert kinds in (["Alert"], ["Alert", "Update"]), kinds
            assert len({r["headers"]["webhook-id"] for r in got}) == len(got)
            assert pushes(far_sink) == []
            push = got[0]
            body = Webhook(near.json()["secret"]).verify(push["body"], push["headers"])
            assert body["case_id"] == case_id

        commander = token(Role.commander, "140400")

        async def case() -> dict[str, object] | None:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=commander)
            return got.json() if got.status_code == 200 else None

        opened = await eventually(case, timeout=30)
        leader = opened["leader"]
        assert isinstance(leader, dict) and leader["organ_name"] == "长治市公安局潞州分局"
        elsewhere = await http.get(f"{dispatch}/api/v1/cases/{case_id}",
                                   headers=token(Role.commander, "320100"))
        assert elsewhere.status_code == 404

        # The operator's view: published, leader assigned, hubs pushed (learnt from events). At
        # least the near one: hubs earlier tests logged come back when notify rebuilds its Redis
        # from the topics, and they are in range too.
        report_id = posted.json()["report_id"]

        observed: dict[str, object] = {}

        async def progress() -> dict[str, object] | None:
            got = (await http.get(f"{alert}/api/v1/reports/{report_id}",
                                  headers=token(Role.operator, "140403"))).json()
            rows = (await http.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                                   headers=commander)).json()["deliveries"]
            hubs = {r["subscriber_id"] for r in rows if r["kind"] == "hub" and r["state"] == "sent"}
            observed.update(report=got, hubs_sent=sorted(hubs))
            done = got["status"] == "published" and got["progress"]["leader"] and \
                got["progress"]["hubs_pushed"] >= 1 and near.json()["subscriber_id"] in hubs
            return got if done else None

        # Alert learns leader and hubs from the progress and delivery topics; in a full run its
        # consumer group may first catch up what earlier modules' stacks left on them.
        try:
            seen = await eventually(progress, timeout=90)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; last observed: {observed!r}") from None
        assert seen["progress"]["leader"]["name"] == leader["name"]


async def test_two_parents_one_alert_then_a_wrong_found_is_reopened_by_the_leaders_level(
    stack: dict[str, ServiceProcess],
) -> None:
    """Mother then father (other phone, the name with U+30FB instead of U+00B7): one case, one
    Alert at the hub and the father's details as an Update. After escalation to the city the
    county commander may not mark found or reopen (403); the city may. The wrong found is
    reopened: the hub that got the Cancel gets a new Alert."""
    alert, dispatch, notify = stack["alert"].url, stack["dispatch"].url, stack["notify"].url
    operator = token(Role.operator, "140403")
    county, city = token(Role.commander, "140403"), token(Role.commander, "140400")
    name = f"阿依努尔{uuid.uuid4().hex[:4]}·买买提"
    async with httpx.AsyncClient(timeout=10) as http:
        with WebhookSink() as sink:
            hub = await http.post(f"{notify}/api/v1/subscribers",
                                  headers=token(Role.admin, "000000"), json={
                "kind": "hub", "name": "长治东站", "location": {"lat": LAST_SEEN[0] + 0.2,
                                                            "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": sink.url}})
            assert hub.status_code == 201, hub.text
            mother = (await http.post(f"{alert}/api/v1/reports", headers=operator,
                                      json=report_body(child__name=name))).json()["case_id"]
            alert_id = f"A-{mother}"

            def mine() -> list[dict[str, Any]]:
                bodies = [json.loads(r["body"]) for r in sink.requests]
                return [b for b in bodies if b.get("alert_id") == alert_id]

            await eventually(lambda: asyncio.sleep(0, mine()), timeout=30)
            second = report_body(child__name=name.replace("·", "・"),
                                 child__description="背红色书包",
                                 reporter__phone="13900000001", reporter__name="买买提")
            father = (await http.post(f"{alert}/api/v1/reports", headers=operator,
                                      json=second)).json()["case_id"]
            await eventually(lambda: asyncio.sleep(0, any(
                "背红色书包" in str((b.get("child") or {}).get("description", ""))
                for b in mine())), timeout=30)
            await asyncio.sleep(2)  # time for a stray second Alert to arrive
            # One Alert, then Updates only: the second report's and, when the leader became
            # known after the first push, the leader's (issue 18 §5).
            types = [b["msg_type"] for b in mine()]
            assert types[0] == "Alert" and set(types[1:]) == {"Update"}, types
            assert len(types) in (2, 3), types
            assert "背红色书包" in mine()[-1]["child"]["description"]
            assert not [r for r in sink.requests
                        if json.loads(r["body"]).get("alert_id") == f"A-{father}"]

            async def linked() -> dict[str, Any] | None:
                got = await http.get(f"{dispatch}/api/v1/cases/{father}", headers=city)
                return got.json() if got.status_code == 200 and got.json()["links"] else None

            case = await eventually(linked, timeout=30)
            assert case["case_id"] == mother and case["links"][0]["case_id"] == father

            escalated = await http.post(f"{dispatch}/api/v1/cases/{mother}/escalate",
                                        headers=county, json={"level": "city", "reason": "重大"})
            assert escalated.status_code == 200, escalated.text
            found = {"outcome": "found_safe", "found_at": datetime.now(UTC).isoformat()}
            refused = await http.post(f"{dispatch}/api/v1/cases/{mother}/found",
                                      headers=county, json=found)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "below_leader_level"
            done = await http.post(f"{dispatch}/api/v1/cases/{mother}/found", headers=city,
                                   json=found)
            assert done.status_code == 200, done.text
            await eventually(lambda: asyncio.sleep(0, mine()[-1]["type"] ==
                                                   "homeward.alert.cancelled.v1"), timeout=30)
            reason = {"reason": "认错了孩子"}
            assert (await http.post(f"{dispatch}/api/v1/cases/{mother}/reopen", headers=county,
                                    json=reason)).status_code == 403
            reopened = await http.post(f"{dispatch}/api/v1/cases/{mother}/reopen", headers=city,
                                       json=reason)
            assert reopened.status_code == 200, reopened.text
            await eventually(lambda: asyncio.sleep(0, mine()[-1]["msg_type"] == "Alert"
                                                   and mine()[-2]["msg_type"] == "Cancel"),
                             timeout=30)
            again, cancel = mine()[-1], mine()[-2]
            assert again["type"] == "homeward.alert.issued.v1"
            assert again["version"] > cancel["version"]
            assert again["child"]["name"] == name


@pytest.fixture(scope="module")
async def hub_push(stack: dict[str, ServiceProcess]) -> dict[str, Any]:
    """One report pushed to one webhook hub, which acknowledges it: the request the sink got
    (`push`), its `sink_url` and `case_id`."""
    alert, notify = stack["alert"].url, stack["notify"].url
    hub_id = f"E2E-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:
        with WebhookSink() as sink:
            hub = await http.post(f"{notify}/api/v1/subscribers",
                                  headers=token(Role.admin, "000000"), json={
                "kind": "hub", "name": "长治西站", "hub_id": hub_id, "region_code": "140403",
                "location": {"lat": LAST_SEEN[0] - 0.1, "lon": LAST_SEEN[1]},
                "channel": {"type": "webhook", "url": sink.url}})
            assert hub.status_code == 201, hub.text
            posted = await http.post(f"{alert}/api/v1/reports", json=report_body(**another_child()),
                                     headers=token(Role.operator, "140403"))
            assert posted.status_code == 202, posted.text
            case_id = posted.json()["case_id"]

            def push() -> dict[str, Any] | None:
                return next((r for r in sink.requests
                             if json.loads(r["body"]).get("case_id") == case_id), None)

            got = await eventually(lambda: asyncio.sleep(0, push()), timeout=30)
        delivery_id = {k.lower(): v for k, v in got["headers"].items()}["webhook-id"]
        acked = await http.post(f"{notify}/api/v1/deliveries/{delivery_id}/ack",
                                headers={"Authorization": "Bearer " + mint_token(
                                    Settings(), Role.hub, "140400", hub_id=hub_id)})
        assert acked.status_code == 200, acked.text
    return {"push": got, "sink_url": sink.url, "case_id": case_id}


async def test_one_report_is_one_trace_from_the_post_to_the_hubs_webhook(
    hub_push: dict[str, Any], otlp: OtlpReceiver,
) -> None:
    """Issue 15: the operator's POST, the outbox relay's publish, dispatch's and notify's
    consumption and the webhook request are spans of one trace, whose id the hub's sink gets in
    the W3C `traceparent` header of the push."""
    got, sink_url = hub_push["push"], hub_push["sink_url"]
    headers = {k.lower(): v for k, v in got["headers"].items()}
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")
    assert version == "00" and len(trace_id) == 32 and trace_id != "0" * 32

    def complete() -> list[Any] | None:
        spans = otlp.trace(trace_id)
        names = {(s.service, s.name) for s in spans}
        wanted = {("homeward-alert", "POST /api/v1/reports"),
                  ("homeward-alert", "homeward.reports.v1 publish"),
                  ("homeward-dispatch", "homeward.reports.v1 process"),
                  ("homeward-notify", "homeward.reports.v1 process")}
        ids = {s.span_id for s in spans}
        # Every span's parent has arrived too (a parent ends, and is exported, after its child).
        whole = all(s.parent_id in ids for s in spans if s.parent_id)
        return spans if wanted <= names and parent_id in ids and whole else None

    try:
        spans = await eventually(lambda: asyncio.sleep(0, complete()), timeout=30)
    except AssertionError:
        seen = sorted({(s.service, s.name) for s in otlp.trace(trace_id)})
        raise AssertionError(f"trace {trace_id} incomplete: {seen}") from None
    by_id = {s.span_id: s for s in spans}
    # The webhook's traceparent names notify's HTTP client span of that very request.
    webhook = by_id[parent_id]
    assert webhook.service == "homeward-notify" and webhook.kind == 3  # SPAN_KIND_CLIENT
    assert webhook.attributes.get("url.full", webhook.attributes.get("http.url")) == sink_url
    # One trace, rooted at the operator's request: every span's parent is in it.
    roots = [s for s in spans if not s.parent_id]
    assert [(r.service, r.name) for r in roots] == [("homeward-alert", "POST /api/v1/reports")]
    assert all(s.parent_id in by_id for s in spans if s.parent_id)
    # The chain: the request -> the relay's publish -> the consumers.
    relay = next(s for s in spans if s.name == "homeward.reports.v1 publish")
    assert by_id[relay.parent_id].service == "homeward-alert"
    for service in ("homeward-dispatch", "homeward-notify"):
        consumed = next(s for s in spans
                        if s.service == service and s.name == "homeward.reports.v1 process")
        assert consumed.parent_id == relay.span_id
    # Dispatch's own publishes (the case log) and notify's consumption of them, same trace.
    assert ("homeward-dispatch", "homeward.dispatch.v1 publish") in {
        (s.service, s.name) for s in spans}
    # The trace as a tree of (service: span), shown with `pytest -s` (issue 15's note).
    children: dict[str, list[Any]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)

    def show(span: Any, depth: int = 0) -> None:
        print("  " * depth + f"{span.service}: {span.name}")
        for child in children.get(span.span_id, []):
            show(child, depth + 1)

    show(roots[0])


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics text -> {(sample name, labels): value}."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    """The sum of `name`'s samples whose labels include `labels`; None when there is none."""
    found = [v for (n, have), v in samples.items()
             if n == name and set(labels.items()) <= have]
    return sum(found) if found else None


async def test_metrics_after_a_flow_answer_the_on_call_questions(
    stack: dict[str, ServiceProcess], hub_push: dict[str, Any], kafka: KafkaServer,
) -> None:
    """Issue 15: after a report was pushed to a hub that acknowledged it, and a poison tip was
    dead-lettered, each service's /metrics (ops port) has every series with sensible values."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:  # no CloudEvents headers: dispatch's tips consumer dead-letters it
        await producer.send_and_wait(topics.TIPS, b"{}",
                                     key=f"poison-metrics-{uuid.uuid4().hex}".encode())
    finally:
        await producer.stop()

    async with httpx.AsyncClient(timeout=10) as http:
        async def metrics_of(name: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
            got = await http.get(stack[name].ops_url + "/metrics")
            assert got.status_code == 200
            return scrape(got.text)

        missing: list[str] = []

        async def settled() -> dict[str, Any] | None:
            m = {name: await metrics_of(name) for name in stack}
            wanted = {
                "dispatch dlq counted": value(m["dispatch"], "homeward_dlq_messages_total",
                                              topic="homeward.tips.v1.dlq"),
                "dispatch dlq depth": value(m["dispatch"], "homeward_dlq_depth_messages",
                                            topic="homeward.tips.v1.dlq"),
                "notify hub ack": value(m["notify"], "homeward_hub_ack_seconds_count"),
                "alert lag sampled": value(m["alert"], "homeward_consumer_lag_messages",
                                           group="homeward-alert-progress") is not None,
                "notify timers sampled": value(m["notify"],
                                               "homeward_delivery_retries_in_flight") is not None}
            missing[:] = [what for what, ok in wanted.items() if not ok]
            return None if missing else m

        try:
            m = await eventually(settled, timeout=30)
        except AssertionError:
            raise AssertionError(f"metrics missing after 30 s: {missing}") from None

    def observed(service: str, histogram: str, within_s: float, **labels: str) -> None:
        """At least one observation, all above zero, one of them (this test's report; the
        topics hold earlier tests' reports too) within `within_s`."""
        count = value(m[service], f"{histogram}_count", **labels) or 0
        assert count >= 1, (service, histogram, labels)
        assert (value(m[service], f"{histogram}_sum", **labels) or 0) > 0
        bucket = value(m[service], f"{histogram}_bucket", le=f"{within_s:.1f}", **labels)
        assert (bucket or 0) >= 1, (service, histogram, within_s)

    # Times of a flow on this machine: above zero, within a minute (an ack: ten).
    observed("dispatch", "homeward_report_to_case_group_seconds", 60)
    observed("notify", "homeward_report_to_first_hub_push_seconds", 60)
    observed("notify", "homeward_delivery_latency_seconds", 60, audience="hub")
    count = value(m["notify"], "homeward_hub_ack_seconds_count") or 0
    assert count >= 1 and (value(m["notify"], "homeward_hub_ack_seconds_bucket",
                                 le="600.0") or 0) >= 1
    notify = m["notify"]
    for status in ("sent", "acknowledged"):
        assert (value(notify, "homeward_delivery_outcomes_total", status=status,
                      audience="hub") or 0) >= 1, status
    assert (value(notify, "homeward_delivery_outcomes_total", status="sent", audience="hub",
                  channel="webhook") or 0) >= 1
    assert (value(notify, "homeward_delivery_retries_in_flight") or 0) >= 0
    assert value(notify, "homeward_hub_acks_overdue") == 0  # acknowledged within the deadline
    # The outbox is drained: nothing waits, nothing old.
    assert value(m["alert"], "homeward_alert_outbox_backlog") == 0
    assert value(m["alert"], "homeward_alert_outbox_oldest_age_seconds") == 0
    # Consumer lag per group, each group of each service, never negative.
    for service, group, topic in (("alert", "homeward-alert-progress", topics.PROGRESS),
                                  ("alert", "homeward-alert-progress", topics.DELIVERIES),
                                  ("dispatch", "homeward-dispatch", topics.REPORTS),
                                  ("dispatch", "homeward-dispatch-tips", topics.TIPS),
                                  ("notify", "homeward-notify", topics.REPORTS),
                                  ("notify", "homeward-notify", topics.DISPATCH)):
        lag = value(m[service], "homeward_consumer_lag_messages", group=group, topic=topic)
        assert lag is not None and lag >= 0, (service, group, topic, lag)
    # The poison tip: counted when dead-lettered, and the DLQ is not empty.
    assert (value(m["dispatch"], "homeward_dlq_messages_total",
                  topic="homeward.tips.v1.dlq") or 0) >= 1
    assert (value(m["dispatch"], "homeward_dlq_depth_messages",
                  topic="homeward.tips.v1.dlq") or 0) >= 1
    # Every series the dashboard and the rules name is served by some service.
    served = {n for samples in m.values() for n, _ in samples}
    for name in metrics.SERIES:
        assert {name, f"{name}_count"} & served, name
