"""What commanders read of the deliveries: the per-case list (with `retrying` since when)
and the spread map's hubs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.notify import domain
from services.notify.context import Context
from services.notify.domain import AlertState
from services.notify.errors import NotFound

SPREAD_ORDER = ("not_yet", "pushed", "acknowledged")


def delivery_row(r: dict[str, str]) -> dict[str, Any]:
    """One ledger record as the deliveries API shows it."""
    return {
        "delivery_id": r["delivery_id"], "subscriber_id": r.get("subscriber_id", ""),
        "name": r.get("name", ""), "kind": r.get("kind", ""),
        "channel": r.get("channel", ""), "alert_id": r.get("alert_id", ""),
        "version": int(r.get("version", "0") or 0), "scope": r.get("scope", ""),
        "state": r.get("state", "pending"),
        "attempts": int(r.get("attempts", "0") or 0),
        "http_status": int(r["http_status"]) if r.get("http_status") else None,
        "error": r.get("error", ""), "overdue": r.get("overdue") == "1",
        "acked_at": r.get("acked_at") or None, "at": r.get("at", ""),
        "since": (r.get("since") or None) if r.get("state") == "retrying" else None,
        "next_at": (r.get("next_at") or None) if r.get("state") == "retrying" else None,
    }


def spread_mark(state: str) -> str:
    return ("acknowledged" if state == "acknowledged" else
            "pushed" if state == "sent" else "not_yet")


def hub_mark(best: str, active: bool) -> str:
    """A hub's mark on the spread map: what reached it (`best` of its deliveries, SPREAD_ORDER);
    one taken out of service that nothing reached is `out_of_service`, not "not yet pushed": a
    closed station is not waiting for a push, and the commander must not count on it."""
    return "out_of_service" if best == "not_yet" and not active else best


@dataclass
class Views:
    ctx: Context

    async def deliveries(self, case_id: str) -> list[dict[str, Any]]:
        return [delivery_row(r) for r in await self.ctx.ledger.of_case(case_id)]

    async def spread(self, case_id: str) -> tuple[AlertState, list[tuple[str, float, float, str]]]:
        ctx = self.ctx
        alert = await ctx.alerts.get(domain.alert_id_of(case_id))
        if alert is None:
            raise NotFound(message=case_id)
        s = ctx.settings
        tiers = [km for _, km in s.radius_tiers_km] + [s.radius_max_km]
        rows = await ctx.subscribers.hubs_with_coords(alert.lat, alert.lon, max(tiers))
        states: dict[str, str] = {}  # hub id -> the best of its deliveries' marks
        for r in await ctx.ledger.of_case(case_id):
            if r.get("kind") != "hub":
                continue
            hub = r.get("subscriber_id", "")
            states[hub] = max(states.get(hub, "not_yet"), spread_mark(r.get("state", "")),
                              key=SPREAD_ORDER.index)
        subs = {s.subscriber_id: s for s in await ctx.subscribers.get_many([r[0] for r in rows])}
        return alert, [(subs[i].name if i in subs else i, lat, lon,
                        hub_mark(states.get(i, "not_yet"), i not in subs or subs[i].active))
                       for i, lat, lon in rows]
