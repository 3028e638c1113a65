"""The planner's hand-off to the delivery workers (issue 18 §2–§3).

`KafkaLanes`: each job is a `homeward.delivery.job.v1` on the lane of its recipient
(delivery_rules.lane_of: restricted for hubs and the case group, public for media and
volunteers), keyed by the recipient's id, so one case's fan-out spreads over every worker
instance while each recipient's jobs stay in order. `InlineLanes`: the same jobs handed to this
process's worker directly (`create_app(consume=False)`, for tests that drive the use cases
themselves; the service always runs with Kafka lanes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from services.notify.audience import Subscriber
from services.notify.delivery_rules import lane_of
from shared.events import DELIVERY_JOB, CloudEvent, DeliveryJob
from shared.kafka import EventPublisher

if TYPE_CHECKING:
    from services.notify.delivery import DeliveryWorker

Job = tuple[Subscriber, DeliveryJob]
Then = Callable[[], Awaitable[None]]


class Lanes(Protocol):
    async def publish(self, jobs: list[Job]) -> Then | None:
        """Hand `jobs` on, in order; what to await once the planner released the alert's lock
        (None when nothing remains to do)."""


def job_event(job: DeliveryJob, source: str) -> CloudEvent:
    """The job as a CloudEvent: subject the case (for tracing and the DLQ), id the delivery's."""
    return CloudEvent.of(DELIVERY_JOB, source, job.case_id, job,
                         event_id=f"{job.delivery_id}:job")


class KafkaLanes:
    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher

    async def publish(self, jobs: list[Job]) -> Then | None:
        """Every job handed to the producer, then confirmed together (acks=all): the planner
        returns only when all of them are on their topics."""
        # (shared.kafka.EventPublisher.publish_many puts the planner's trace on each job.)
        await self.publisher.publish_many(
            (lane_of(sub.kind), job_event(job, self.publisher.source), job.subscriber_id)
            for sub, job in jobs)
        return None


class InlineLanes:
    """Jobs worked by this process's worker in the order they were handed on (as one
    partition would): each hand-off's deliveries start after the previous one's ended, so a
    recipient never gets a later version before an earlier one."""

    WAIT_S = 60.0  # a hand-off whose caller never delivered does not hold the others longer

    def __init__(self) -> None:
        self.worker: DeliveryWorker | None = None
        self._tail: asyncio.Future[None] | None = None

    async def publish(self, jobs: list[Job]) -> Then | None:
        worker = self.worker
        assert worker is not None, "InlineLanes needs its worker"
        previous, done = self._tail, asyncio.get_running_loop().create_future()
        self._tail = done

        async def deliver() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous], timeout=self.WAIT_S)
                await worker.run(jobs)
            finally:
                if not done.done():
                    done.set_result(None)

        return deliver
