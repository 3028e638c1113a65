"""Redis flushed while idle (issue 7): the three services as processes are stopped, Redis is
emptied (FLUSHALL) and they are started again. Dispatch replays homeward.dispatch.v1; notify
rebuilds subscribers, alerts, push bodies, the delivery ledger, hub consoles and timers from
its logs and the receipts; its delivery-jobs lanes (issue 18) need nothing rebuilt and no job
is worked again. Every answer of the API is the same as before, no recipient gets a
second distinct delivery, and a widening that was pending before the flush still happens.

The alert service's report progress is kept in Redis and not rebuilt: it is left out here."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from services.notify.ledger_rules import CANCELLED
from services.notify.signing import verify_cap
from shared import topics
from shared.auth import Role, mint_token
from shared.settings import Settings
from shared.verification import JWKS_PATH
from tests.helpers import WebhookSink, eventually, log_lines, read_topic, report_body

pytestmark = pytest.mark.e2e

LAST_SEEN = (36.19, 113.11)  # 长治市潞州区
UNIT_S = 90.0  # one "hour" of the radius tiers: the fresh case widens to 200 km after it
ENV = {"HOMEWARD_NOTIFY_TIER_UNIT_S": str(UNIT_S)}


def token(role: Role, region: str, hub_id: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(Settings(), role, region, hub_id=hub_id)}


COMMANDER = token(Role.commander, "140400")


def header(request: dict[str, Any], name: str) -> str:
    return next(str(v) for k, v in request["headers"].items() if k.lower() == name)


def pushes(sink: WebhookSink, cases: set[str]) -> dict[str, dict[str, Any]]:
    """webhook-id -> body of this test's pushes (other tests' cases are on the topics too)."""
    out = {}
    for r in list(sink.requests):
        body = json.loads(r["body"])
        if body.get("case_id") in cases:
            out[header(r, "webhook-id")] = body
    return out


def atom_entries(xml: str, alert_ids: set[str]) -> list[str]:
    return [e for e in re.findall(r"<entry>.*?</entry>", xml, flags=re.S)
            if any(a in e for a in alert_ids)]


async def snapshot(http: httpx.AsyncClient, urls: dict[str, str], cases: dict[str, str],
                   hubs: dict[str, dict[str, str]], pinned: dict[str, int]) -> dict[str, Any]:
    """Every answer this test compares. `pinned`: CAP versions read by number (the fresh case's
    alert may widen after the flush; its earlier versions must stay the same)."""
    dispatch, notify = urls["dispatch"], urls["notify"]
    jwks = (await http.get(f"{notify}{JWKS_PATH}")).json()
    ids = set(cases.values())
    alert_ids = {f"A-{c}" for c in ids}
    snap: dict[str, Any] = {}
    for name, case_id in cases.items():
        got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=COMMANDER)
        assert got.status_code == 200, got.text
        snap[f"case:{name}"] = got.json()
        got = await http.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                             headers=COMMANDER)
        assert got.status_code == 200, got.text
        # This test's hubs: earlier tests' hubs in range whose sinks are gone keep retrying.
        snap[f"deliveries:{name}"] = [r for r in got.json()["deliveries"]
                                      if r["subscriber_id"] in hubs]
        version = pinned.get(name)
        got = await http.get(f"{notify}/api/v1/alerts/A-{case_id}.xml", headers=COMMANDER,
                             params={"version": version} if version else None)
        assert got.status_code == 200, got.text
        snap[f"cap:{name}"] = signed_content(got.content, jwks)
        public = await http.get(f"{notify}/api/v1/alerts/A-{case_id}.xml")
        snap[f"cap-public:{name}"] = (public.status_code, signed_content(public.content, jwks)
                                      if public.status_code == 200 else public.text)
    listed = await http.get(f"{dispatch}/api/v1/cases", headers=COMMANDER,
                            params={"limit": 500})
    assert listed.status_code == 200, listed.text
    snap["cases"] = [c for c in listed.json() if c["case_id"] in ids]
    atom = await http.get(f"{notify}/api/v1/alerts/active.atom")
    assert atom.status_code == 200, atom.text
    snap["atom"] = atom_entries(atom.text, alert_ids)
    for hub_id, headers in hubs.items():
        got = await http.get(f"{notify}/api/v1/hubs/{hub_id}/alerts", headers=headers)
        assert got.status_code == 200, got.text
        snap[f"hub:{hub_id}"] = [a for a in got.json()["alerts"] if a["case_id"] in ids]
    return snap


def signed_content(cap: bytes, jwks: dict[str, Any]) -> str:
    """The CAP as signed (issue 17): ECDSA signatures differ at every signing, so the snapshot
    compares what the signature covers, after checking the signature."""
    return verify_cap(cap, jwks).decode()


async def quiet(http: httpx.AsyncClient, urls: dict[str, str], cases: dict[str, str],
                hubs: dict[str, dict[str, str]], pinned: dict[str, int]) -> dict[str, Any]:
    """Snapshots until two in a row, a second apart, are the same."""
    last = await snapshot(http, urls, cases, hubs, pinned)
    for _ in range(30):
        await asyncio.sleep(1.5)
        now = await snapshot(http, urls, cases, hubs, pinned)
        if now == last:
            return now
        last = now
    raise AssertionError("the services did not settle")


def stop(procs: dict[str, ServiceProcess]) -> None:
    for proc in procs.values():
        proc.stop()


async def test_redis_flushed_while_idle_is_rebuilt_from_the_topics(
    kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
) -> None:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    where = data_dir / "redis-flush"
    procs = start_services(kafka.bootstrap, redis_server.url, where, ports, extra_env=ENV)
    try:
        await scenario(procs, lambda: start_services(kafka.bootstrap, redis_server.url, where,
                                                     ports, extra_env=ENV),
                       redis_server.url, kafka.bootstrap)
    finally:
        stop(procs)


async def scenario(procs: dict[str, ServiceProcess], restart: Any, redis_url: str,
                   bootstrap: str) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        with WebhookSink() as near_sink, WebhookSink() as far_sink:
            await flow(http, procs, restart, redis_url, near_sink, far_sink, bootstrap)


async def jobs_of(bootstrap: str, cases: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The delivery jobs of `cases` on each lane (issue 18), as {key, value} dicts."""
    return {lane: [m for m in await read_topic(bootstrap, lane)
                   if (m["value"] or {}).get("case_id") in cases]
            for lane in topics.JOB_TOPICS}


def check_jobs(jobs: dict[str, list[dict[str, Any]]], hubs: set[str]) -> set[str]:
    """Keyed by recipient, hubs on the restricted lane; the distinct jobs (delivery ids: one per
    version and recipient; publishing is at least once, the worker's claim makes it once)."""
    assert all(m["value"]["subscriber_id"] not in hubs
               for m in jobs[topics.DELIVERY_JOBS_PUBLIC])
    restricted = [m for m in jobs[topics.DELIVERY_JOBS_RESTRICTED]
                  if m["value"]["subscriber_id"] in hubs]
    assert all(m["key"] == m["value"]["subscriber_id"] for m in restricted)
    return {m["value"]["delivery_id"] for m in restricted}


async def flow(http: httpx.AsyncClient, procs: dict[str, ServiceProcess], restart: Any,
               redis_url: str, near_sink: WebhookSink, far_sink: WebhookSink,
               bootstrap: str) -> None:
    urls = {name: p.url for name, p in procs.items()}
    alert, dispatch, notify = urls["alert"], urls["dispatch"], urls["notify"]
    tag = uuid.uuid4().hex[:8]
    admin = token(Role.admin, "000000")
    hubs: dict[str, dict[str, str]] = {}
    # 30 km and 150 km north of the last-seen point: the far hub is covered by the fresh
    # case only once its radius grows from 100 to 200 km.
    for name, sink, km in (("near", near_sink, 30), ("far", far_sink, 150)):
        hub_id = f"rf-{name}-{tag}"
        got = await http.post(f"{notify}/api/v1/subscribers", headers=admin, json={
            "kind": "hub", "name": f"{name} {tag}", "hub_id": hub_id,
            "location": {"lat": LAST_SEEN[0] + km / 110.57, "lon": LAST_SEEN[1]},
            "channel": {"type": "webhook", "url": sink.url}})
        assert got.status_code == 201, got.text
        hubs[hub_id] = token(Role.hub, "140403", hub_id=hub_id)
    near_id, far_id = list(hubs)

    # released / found / open (all last seen 10 minutes ago: past the last tier with this
    # clock, so their radius is 500 km at once), and later a fresh one last seen then.
    cases: dict[str, str] = {}
    operator = token(Role.operator, "140403")

    async def post(n: int, name: str) -> None:
        # Distinct children and reporters: dispatch would link reports of the same child.
        phone = f"139{int(tag, 16) % 10**7:07d}{n}"
        body = report_body(child__name=f"测试{name}{tag}", reporter__phone=phone)
        if name == "fresh":
            body["last_seen"]["at"] = datetime.now(UTC).isoformat()
        posted = await http.post(f"{alert}/api/v1/reports", json=body, headers=operator)
        assert posted.status_code == 202, posted.text
        cases[name] = posted.json()["case_id"]
        ids.add(cases[name])

    ids: set[str] = set()
    for n, name in enumerate(("released", "found", "open")):
        await post(n, name)

    async def opened() -> bool:
        for case_id in ids:
            got = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=COMMANDER)
            if got.status_code != 200 or not got.json().get("leader"):
                return False
        return True

    await eventually(opened, timeout=60)

    def has(sink: WebhookSink, case_id: str) -> bool:
        return case_id in {b["case_id"] for b in pushes(sink, ids).values()}

    # Both hubs have the found case's Alert before it is found: had the found event come
    # first, they would rightly hear nothing of it (a Cancel goes only to whom the Alert
    # reached; the planner drops the Alert of an ended alert), and this test would check
    # nothing of the Cancel's rebuild.
    await eventually(lambda: asyncio.sleep(0, has(near_sink, cases["found"])
                                           and has(far_sink, cases["found"])), timeout=120)
    async def previewed() -> str | None:  # once notify has the alert (issue 17 §4)
        got = await http.get(f"{dispatch}/api/v1/cases/{cases['released']}/release-preview",
                             headers=COMMANDER)
        return str(got.json()["content_hash"]) if got.status_code == 200 else None

    got = await http.post(f"{dispatch}/api/v1/cases/{cases['released']}/release",
                          headers=COMMANDER,
                          json={"content_hash": await eventually(previewed, timeout=30)})
    assert got.status_code == 200, got.text
    got = await http.post(f"{dispatch}/api/v1/cases/{cases['found']}/found",
                          headers=COMMANDER,
                          json={"outcome": "found_safe",
                                "found_at": datetime.now(UTC).isoformat()})
    assert got.status_code == 200, got.text
    case = (await http.get(f"{dispatch}/api/v1/cases/{cases['open']}",
                           headers=COMMANDER)).json()
    task = next(t for t in case["tasks"] if t["status"] == "open")
    got = await http.post(
        f"{dispatch}/api/v1/cases/{cases['open']}/tasks/{task['task_id']}/complete",
        headers=COMMANDER, json={"note": "done"})
    assert got.status_code == 200, got.text
    # The fresh case only now: its radius grows UNIT_S after it was last seen, and everything
    # up to the flush must happen before that, however slow the machine was until here.
    await post(3, "fresh")
    fresh_posted = time.monotonic()
    await eventually(opened, timeout=60)

    # near: every case; far: all but the fresh one (outside its first 100 km). A stack
    # started late in the whole suite may wait on its consumer groups' first rebalance.
    try:
        await eventually(lambda: asyncio.sleep(0, {
            b["case_id"] for b in pushes(near_sink, ids).values()} == ids), timeout=120)
        await eventually(lambda: asyncio.sleep(0, any(
            b["type"].endswith("cancelled.v1") for b in pushes(far_sink, ids).values())),
            timeout=120)
    except AssertionError as exc:
        missing = {name: case_id for name, case_id in cases.items()
                   if case_id not in {b["case_id"] for b in pushes(near_sink, ids).values()}}
        raise AssertionError(f"{exc}; not pushed to the near hub: {missing}; far got "
                             f"{sorted(b['type'] for b in pushes(far_sink, ids).values())}; "
                             f"notify log: {procs['notify'].log_path}\n"
                             f"{log_lines(procs['notify'].log_path, set(missing.values()))}"
                             ) from exc
    # The near hub acknowledges the open case's push.
    did = next(i for i, b in pushes(near_sink, ids).items() if b["case_id"] == cases["open"])
    got = await http.post(f"{notify}/api/v1/deliveries/{did}/ack", headers=hubs[near_id])
    assert got.status_code == 200, got.text

    # The fresh case's leader reaches the hubs once dispatch has formed its group, as an
    # Update when the first push went out before that (issue 18 §5). Its version is the one the
    # widening follows, so it is read only once the leader is there.
    def leader_told() -> bool:
        return any(b["case_id"] == cases["fresh"] and b.get("leader")
                   for b in pushes(near_sink, ids).values())

    await eventually(lambda: asyncio.sleep(0, leader_told()), timeout=60)
    fresh_version = max(b["version"] for b in pushes(near_sink, ids).values()
                        if b["case_id"] == cases["fresh"])
    pinned = {"fresh": fresh_version}
    before = await quiet(http, urls, cases, hubs, pinned)
    seen_near, seen_far = pushes(near_sink, ids), pushes(far_sink, ids)
    assert all(b["case_id"] != cases["fresh"] for b in seen_far.values()), \
        f"the fresh case widened before the flush: raise UNIT_S ({UNIT_S:g}s)"
    assert [r["state"] for r in before["deliveries:open"]].count("acknowledged") == 1
    # Every push went through the delivery-jobs lanes (issue 18); none is needed to rebuild:
    # a worker commits a job only after its receipt, so the flush leaves nothing to redo.
    # The webhook-ids are the job ids. A job the worker took after its alert had ended (the
    # found case's leader Update, when the found came first) is `dropped`, sent nowhere.
    jobs_before = check_jobs(await jobs_of(bootstrap, ids), set(hubs))
    delivered = set(seen_near) | set(seen_far)
    dropped = {r["delivery_id"]: (name, r["error"]) for name in cases
               for r in before[f"deliveries:{name}"] if r["state"] == "dropped"}
    assert set(dropped.values()) <= {("found", CANCELLED)}, dropped
    assert not delivered & set(dropped)
    assert jobs_before == delivered | set(dropped), (jobs_before - delivered - set(dropped))

    stop(procs)
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        await redis.flushall()
        assert await redis.dbsize() == 0
    finally:
        await redis.aclose()
    procs.update(restart())
    assert time.monotonic() - fresh_posted < UNIT_S, \
        f"the restart took too long for this clock: raise UNIT_S ({UNIT_S:g}s)"

    after = await snapshot(http, urls, cases, hubs, pinned)
    for key in before:
        assert after[key] == before[key], key
    # Nothing was sent again: the same distinct webhook-ids at both hubs.
    await asyncio.sleep(3)
    assert pushes(near_sink, ids).keys() == seen_near.keys()
    assert pushes(far_sink, ids).keys() == seen_far.keys()
    assert check_jobs(await jobs_of(bootstrap, ids), set(hubs)) == jobs_before  # none new

    # The fresh case's widening timer came back: at 200 km the far hub is told, once.
    async def widened() -> list[dict[str, Any]]:
        return [b for i, b in pushes(far_sink, ids).items() if i not in seen_far]

    new = await eventually(widened, timeout=UNIT_S * 2 + 60)
    await asyncio.sleep(3)
    new = await widened()
    assert len(new) == 1 and new[0]["case_id"] == cases["fresh"], new
    assert new[0]["version"] == fresh_version + 1 and new[0]["radius_km"] == 200
    assert pushes(near_sink, ids).keys() == seen_near.keys()
    got = await http.get(f"{notify}/api/v1/deliveries", params={"case_id": cases["fresh"]},
                         headers=COMMANDER)
    rows = [r for r in got.json()["deliveries"] if r["subscriber_id"] in hubs]
    assert [r for r in rows if r["version"] <= fresh_version] == before["deliveries:fresh"]
    assert {(r["subscriber_id"], r["version"]) for r in rows
            if r["version"] > fresh_version} >= {(far_id, fresh_version + 1)}
