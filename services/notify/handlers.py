"""Notify's use cases, composed (issue 18 §7): each part has one job and its dependencies passed
in; `Notify` only holds them together and names the entry points the api, consumers and
tests call.

* planner.Planner — alert life cycle: versions, audiences, recipients; its fanout.FanOut
  hands them on as delivery jobs;
* delivery.DeliveryWorker — works the jobs: claims, drops, supersedes, retries; its
  sending.Sender makes each try and records it (decisions in delivery_rules);
* registry.Registry — subscribers; rebuild.Rebuild — Redis from the topics;
* acks.Acks — hub acknowledgements and ack deadlines; views.Views — commanders' views;
* timers.Timers — durable timers, one loop per timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.notify.acks import Acks
from services.notify.audience import Subscriber
from services.notify.context import Context
from services.notify.delivery import DeliveryWorker
from services.notify.errors import Conflict, Forbidden, NotFound
from services.notify.fanout import body_key, job_of
from services.notify.lanes import InlineLanes, Lanes
from services.notify.outbound import AppriseSender, WebhookSender
from services.notify.planner import WIDEN, Planner
from services.notify.rebuild import Rebuild
from services.notify.registry import Registry
from services.notify.sending import ACKS, RETRIES
from services.notify.signing import Keyring
from services.notify.timers import TIMERS_KEY, Timers
from services.notify.views import Views
from shared.kafka import Bootstrap

__all__ = ["ACKS", "RETRIES", "TIMERS_KEY", "WIDEN", "Conflict", "Forbidden", "NotFound",
           "Notify"]


@dataclass
class Notify:
    ctx: Context
    webhooks: WebhookSender
    apprise: AppriseSender
    lanes: Lanes = field(default_factory=InlineLanes)
    keyring: Keyring | None = None  # the issuer's signing keys (issue 17); None: unsigned

    def __post_init__(self) -> None:
        ctx = self.ctx
        self.registry = Registry(ctx, self.webhooks)
        self.worker = DeliveryWorker(ctx, self.webhooks, self.apprise, self.registry.disable,
                                     self.keyring)
        if isinstance(self.lanes, InlineLanes):
            self.lanes.worker = self.worker
        self.planner = Planner(ctx, self.lanes)
        self.acks = Acks(ctx, self.worker.sender)
        self.views = Views(ctx)
        self.timers = Timers(ctx.timers, {RETRIES: self.worker.retry, WIDEN: self.planner.widen,
                                          ACKS: self.acks.overdue},
                             ctx.settings.notify_tick_s)
        # What the api, consumers, app and tests use.
        self.settings, self.subscribers, self.alerts = ctx.settings, ctx.subscribers, ctx.alerts
        self.ledger, self.feed, self.publisher, self.keys = (ctx.ledger, ctx.feed,
                                                             ctx.publisher, ctx.keys)
        self.link, self.verify_base = ctx.link, ctx.verify_base
        self.children = self.planner.children
        self.on_report_accepted = self.planner.on_report_accepted
        self.on_case_event = self.planner.on_case_event
        self.widen = self.planner.widen
        self.register, self.rotate_secret = self.registry.register, self.registry.rotate_secret
        self.disable = self.registry.disable
        self.rebuild_subscribers = self.registry.rebuild
        self.reseal_subscribers = self.registry.reseal
        self.acknowledge = self.acks.acknowledge
        self.deliveries, self.spread = self.views.deliveries, self.views.spread
        self.tick, self.run_timers = self.timers.tick, self.timers.run

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.ctx.clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self.ctx.clock = value

    async def rebuild(self, bootstrap: Bootstrap) -> dict[str, int]:
        """Redis lost notify's state: put it back from the topics (services.notify.rebuild)."""
        return await Rebuild(self.planner, self.registry).run(bootstrap)

    async def deliver(self, sub: Subscriber, body: dict[str, Any]) -> None:
        """One delivery of a logged-or-not body, worked here (operators' replays, tests)."""
        await self.ctx.ledger.put_body(body_key(body), body)
        await self.worker.run([(sub, job_of(sub, body))])
