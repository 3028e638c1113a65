"""Who a version goes to, found page by page (issue 18 §6; the rule is in
services.notify.selection): the geo indexes and the alert's recipients in Redis, read by the
planner (services.notify.fanout.FanOut.fan_out) one page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.notify import selection
from services.notify.audience import PUBLIC_KINDS, Subscriber, SubscriberKind
from services.notify.context import Context
from services.notify.domain import AlertState


@dataclass
class Selection:
    ctx: Context

    async def pages(self, alert: AlertState, everyone: bool = False,
                    kinds: tuple[SubscriberKind, ...] | None = None,
                    ) -> AsyncIterator[list[Subscriber]]:
        """Who this version goes to, in pages as they are found (services.notify.selection
        gives the rule: hubs first, the annulus before the old circle, the first page at
        once): recipients first covered by it (in range, of an audience the alert has, not
        told by an earlier version); with `everyone`, also every earlier recipient (new
        content). `kinds` limits both to those kinds of subscriber. No id is in two pages."""
        ctx, s = self.ctx, self.ctx.settings
        audience = [SubscriberKind.hub]
        if alert.released:
            audience += list(PUBLIC_KINDS)
        if kinds is not None:
            audience = [k for k in audience if k in kinds]
        seen: set[str] = set()
        pending: list[str] = []
        first = True
        for kind in audience:
            async for ids in self._in_range(kind, alert):
                if everyone:
                    new = [i for i in ids if i not in seen]
                    seen.update(new)
                else:
                    told = await ctx.alerts.told(alert.alert_id, ids)
                    new = selection.fresh(ids, told, alert.version)
                pending += new
                size = s.notify_select_page
                if pending and size > 0 and (first or len(pending) >= size):
                    yield await self._subscribers(alert, pending, kinds)
                    pending, first = [], False
        if everyone:  # the case group is told by push_group
            pending += [i for i in await ctx.alerts.recipients(alert.alert_id)
                        if i not in seen]  # `seen` holds the pending ones too
        if pending:
            yield await self._subscribers(alert, pending, kinds)

    async def _in_range(self, kind: SubscriberKind,
                        alert: AlertState) -> AsyncIterator[list[str]]:
        """Ids of `kind` within the alert's radius: one query for a small kind, cell by cell
        (annulus first) for a large one; each id once."""
        ctx, s = self.ctx, self.ctx.settings
        subs = ctx.subscribers
        if await subs.count(kind) <= s.notify_select_cells_above:
            yield await subs.ids_within(kind, alert.lat, alert.lon, alert.radius_km)
            return
        earlier = [v.radius_km for v in alert.versions[:-1]]
        inner = max(earlier) if earlier else 0.0
        for cell in selection.cells(alert.lat, alert.lon, min(inner, alert.radius_km),
                                    alert.radius_km, s.notify_select_cell_km):
            rows = await subs.in_box(kind, *cell.centre, *cell.box_km())
            ids = selection.keep(rows, cell, alert.lat, alert.lon, alert.radius_km)
            if ids:
                yield ids

    async def _subscribers(self, alert: AlertState, ids: list[str],
                           kinds: tuple[SubscriberKind, ...] | None) -> list[Subscriber]:
        subs = [s for s in await self.ctx.subscribers.get_many(ids)
                if s.active and s.kind != SubscriberKind.member
                and (kinds is None or s.kind in kinds)]
        if alert.exercise:
            subs = [s for s in subs if s.drills]
        return subs

    async def recipients(self, alert: AlertState, everyone: bool = False,
                         kinds: tuple[SubscriberKind, ...] | None = None) -> list[Subscriber]:
        """All of `pages` at once."""
        return [sub async for page in self.pages(alert, everyone, kinds) for sub in page]
