"""services.notify.delivery.BatchAlerts: one read of an alert's state serves a batch's jobs
for at most `max_age_s`, concurrent jobs share it, and a failed read is not kept."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.delivery import BatchAlerts


class Reads:
    def __init__(self, fail_first: bool = False) -> None:
        self.count = 0
        self.fail_first = fail_first

    async def __call__(self, alert_id: str) -> object:
        self.count += 1
        nth = self.count
        await asyncio.sleep(0.01)  # the round trip: every concurrent job starts before it ends
        if self.fail_first and nth == 1:
            raise ConnectionError("redis away")
        return (alert_id, nth)


@pytest.mark.parametrize(("ages", "reads"), [
    ([0.0, 0.0, 0.1, 0.25], 1),  # within max_age_s: the first read serves them all
    ([0.0, 0.26], 2),            # older than max_age_s: read again
    ([0.0, 0.3, 0.4, 0.6], 3),   # each read serves the next 0.25 s
])
def test_a_read_serves_until_it_is_older_than_max_age(ages: list[float], reads: int) -> None:
    async def go() -> None:
        read, now = Reads(), [0.0]
        alerts = BatchAlerts(read, max_age_s=0.25, clock=lambda: now[0])  # type: ignore[arg-type]
        for at in ages:
            now[0] = at
            await alerts.get("A-1")
        assert read.count == reads

    asyncio.run(go())


def test_concurrent_jobs_share_one_read_and_alerts_are_apart() -> None:
    async def go() -> None:
        read = Reads()
        alerts = BatchAlerts(read, clock=lambda: 0.0)  # type: ignore[arg-type]
        got = await asyncio.gather(*(alerts.get(a) for a in ["A-1"] * 50 + ["A-2"] * 50))
        assert read.count == 2
        assert set(got) == {("A-1", 1), ("A-2", 2)}  # one read each, in the order asked

    asyncio.run(go())


def test_a_failed_read_is_raised_then_read_again() -> None:
    async def go() -> None:
        read = Reads(fail_first=True)
        alerts = BatchAlerts(read, clock=lambda: 0.0)  # type: ignore[arg-type]
        with pytest.raises(ConnectionError):
            await alerts.get("A-1")
        assert await alerts.get("A-1") == ("A-1", 2)

    asyncio.run(go())
