"""The purge of a case's tips kept beside it (services/dispatch/tips.py, issues 12 and 13) on a
real Redis: attached tips keep id, time and place without tipster or description; tips still
held under the case's ids (its own, a linked report's) are gone; other cases are untouched."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from services.dispatch.domain import Change
from services.dispatch.tips import PARKED, PARKED_CASES, PARKED_OF, PARKED_SINCE, TipStore
from shared import events as ev
from shared import pii
from shared.events import TipLocation, TipReceived

pytestmark = pytest.mark.integration


def _case() -> str:
    return f"140403-20261123-{uuid.uuid4().hex[:6].upper()}"


def _tip(case_id: str, contact: str) -> TipReceived:
    return TipReceived(tip_id=f"T{uuid.uuid4().hex[:10]}", case_id=case_id,
                       seen_at=datetime.now(UTC), location=TipLocation(lat=36.2, lon=113.1),
                       description="穿红衣服的孩子在车站", contact=contact,
                       received_at=datetime.now(UTC))


def _attached(case_id: str, tip: TipReceived) -> Change:
    return Change(type=ev.CASE_TIP_ATTACHED, event_id=f"{tip.tip_id}:attached",
                  case_id=case_id,
                  data={"details": {"tip": tip.model_dump(mode="json")}, "at": "x"})


async def _attach(redis: Redis, store: TipStore, case_id: str, tip: TipReceived) -> None:
    pipe: Any = redis.pipeline(transaction=True)
    store.stage(pipe, case_id, [_attached(case_id, tip)])
    await pipe.execute()


@pytest.mark.parametrize("linked", [False, True])
async def test_purge_scrubs_attached_tips_and_drops_held_ones(redis: Redis,
                                                               linked: bool) -> None:
    store = TipStore(redis)
    case_id, other, report_id = _case(), _case(), _case()
    kept = _tip(case_id, "13912345678")
    await _attach(redis, store, case_id, kept)
    # Held under the case id itself, or under the id of a report linked into the case.
    held = _tip(report_id if linked else case_id, "13711112222")
    await store.park(held, 1.0, 2.0)
    neighbour = _tip(other, "13633334444")
    await _attach(redis, store, other, neighbour)
    await store.park(_tip(other, "13555556666"), 1.0, 2.0)

    named = [case_id, report_id] if linked else [case_id]
    await store.purge(case_id, named)
    await store.purge(case_id, named)  # idempotent

    total, items = await store.page(case_id, 0, 10)
    assert total == 1
    (tip,) = items
    before = kept.model_dump(mode="json")
    assert {k: tip[k] for k in ("tip_id", "seen_at", "location", "received_at")} == {
        k: before[k] for k in ("tip_id", "seen_at", "location", "received_at")}
    assert (tip["contact"], tip["description"]) == ("", pii.PURGED)
    assert await redis.hget(PARKED, held.tip_id) is None
    assert await redis.zscore(PARKED_SINCE, held.tip_id) is None
    assert not await redis.exists(PARKED_OF + held.case_id)
    assert await redis.zscore(PARKED_CASES, held.case_id) is None
    assert await store.parked_for(held.case_id) == []
    raw = b"".join(json.dumps(v).encode() for v in (await redis.hgetall(PARKED)).values())
    assert b"13711112222" not in raw and "13912345678" not in json.dumps(items)

    # Another case keeps everything.
    _, theirs = await store.page(other, 0, 10)
    assert theirs[0]["contact"] == "13633334444"
    assert [t.contact for t in await store.parked_for(other)] == ["13555556666"]
