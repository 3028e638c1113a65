"""Radius selection in pages (issue 18 §6) against a real Redis: cell by cell it keeps exactly
whom one GEOSEARCH of the circle keeps, and a planner dying between the pages of a widening
leaves the rest to the widening's redelivery, with one webhook-id per recipient."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from redis.asyncio import Redis

from services.notify import selection
from services.notify.adapters import SubscriberRepository
from services.notify.audience import SubscriberKind
from services.notify.domain import alert_id_of
from services.notify.sealing import SubscriberSeal
from shared.settings import Settings
from tests.integration.test_notify_delivery import north, sinks, stack_factory

__all__ = ["sinks", "stack_factory"]  # the fixtures this module uses


@pytest.mark.parametrize(("inner", "outer", "cell_km"), [
    (0.0, 100.0, 25.0), (100.0, 200.0, 40.0), (300.0, 500.0, 50.0), (0.0, 30.0, 50.0),
])
async def test_cells_keep_exactly_what_one_geosearch_keeps(
    redis: Redis, settings: Settings, inner: float, outer: float, cell_km: float
) -> None:
    repo = SubscriberRepository(redis, SubscriberSeal.from_settings(settings))
    rng = random.Random(11)
    lat, lon = 36.19, 113.11
    points: list[Any] = []
    for i in range(20_000):
        points += [lon + rng.uniform(-7.0, 7.0), lat + rng.uniform(-5.0, 5.0), f"V{i}"]
    await redis.geoadd("notify:geo:volunteer", points)
    whole = await repo.ids_within(SubscriberKind.volunteer, lat, lon, outer)
    by_cell: list[str] = []
    for cell in selection.cells(lat, lon, inner, outer, cell_km):
        rows = await repo.in_box(SubscriberKind.volunteer, *cell.centre, *cell.box_km())
        by_cell += selection.keep(rows, cell, lat, lon, outer)
    assert len(by_cell) == len(set(by_cell))  # nobody twice
    assert sorted(by_cell) == sorted(whole)
    assert len(whole) > 20


async def test_planner_dying_between_pages_loses_nobody_and_sends_nobody_twice(
    stack_factory: Any, sinks: Any
) -> None:
    # Cells for every kind, pages of 2: the widening to 200 km goes out in several pages.
    stack = await stack_factory(notify_tier_unit_s=4.0, notify_select_cells_above=0,
                                notify_select_page=2, notify_select_cell_km=30.0)
    near = sinks("near")
    await stack.subscribe("近站", SubscriberKind.hub, *north(50), url=near.url)
    ring = {km: sinks(f"r{km}") for km in (110, 125, 140, 155, 170, 185, 195)}
    for km, sink in ring.items():
        await stack.subscribe(f"站{km}", SubscriberKind.hub, *north(km), url=sink.url)
    far = sinks("far")
    await stack.subscribe("远站", SubscriberKind.hub, *north(260), url=far.url)
    case_id = await stack.report(seen_ago_s=3.6)
    alert_id = alert_id_of(case_id)
    assert len(near.requests) == 1 and not any(s.requests for s in ring.values())
    # One tier "hour" is 4 s: past the first boundary the radius is 200 km for 4 s.
    await asyncio.sleep(0.5)

    fanout = stack.notify.planner.fanout
    hand_on, handed = fanout._hand_on, []

    async def dies_after_the_first_page(*args: Any, **kwargs: Any) -> Any:
        if handed:
            raise ConnectionError("the planner dies between pages")
        handed.append(args[1])
        then = await hand_on(*args, **kwargs)
        if then is not None:  # the first page is delivered (as from the Kafka lanes)
            await then()
        return None

    fanout._hand_on = dies_after_the_first_page  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await stack.notify.widen(alert_id)
    assert len(handed) == 1 and len(handed[0]) == 1  # the first page leaves at once
    assert sum(len(s.requests) for s in ring.values()) == 1
    fanout._hand_on = hand_on  # type: ignore[method-assign]

    await stack.notify.widen(alert_id)  # the timer's redelivery finishes the widening
    await stack.notify.widen(alert_id)  # and a second one changes nothing
    for km, sink in ring.items():
        ids = {r["headers"]["webhook-id"] for r in sink.requests}
        assert len(ids) == 1, km  # everyone newly covered, each under one webhook-id
        assert {b["version"] for b in sink.bodies()} == {2}
    assert len(near.requests) == 1 and far.requests == []
    told = await stack.notify.alerts.recipients(alert_id)
    assert sorted(v for v in told.values()) == [1] + [2] * len(ring)
