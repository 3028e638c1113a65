"""Sightings pushed to people (issue 16 §1–2): a tip attached to a case goes to its leader and
its investigation member, a local check (核查) to the head of the county bureau that checks —
over the case group's channel (`notify_group_apprise_url`, the SMS/chat gateway with {phone}),
with receipts of `scope: group` (shared.events.SCOPE_GROUP) on homeward.deliveries.v1, sent,
retried and dead-lettered like every other delivery: one job per person on the restricted
lane (`Planner.publish`, issue 18).

The push carries the time and place of the sighting, where it lies from the last-seen point
(distance, bearing), the radius now, and its plausibility, as dispatch assessed it
(shared.events.TipAssessment); a hub sighting names the hub. Never the tipster's contact
(restricted to the console); the description only inside `text`, which is sealed with the
case's key when the body is logged (shared.casekeys.BODY_FIELDS). Drills reach nobody.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.notify import audience, domain
from services.notify.audience import Subscriber
from shared import topics
from shared.casekeys import open_event
from shared.display import people_time
from shared.events import (
    CASE_CHECK_ASSIGNED,
    CASE_CHECK_OVERDUE,
    CASE_TIP_ATTACHED,
    TIP_PUSHED,
    CaseEvent,
    CloudEvent,
    TipAssessment,
)
from shared.text import cut

if TYPE_CHECKING:
    from services.notify.context import Context
    from services.notify.planner import Planner

TYPES = frozenset({CASE_TIP_ATTACHED, CASE_CHECK_ASSIGNED, CASE_CHECK_OVERDUE})


def tip_body(case_id: str, details: dict[str, Any], limit: int, zone: str) -> dict[str, Any]:
    """The push of a tip: ids, source and hub, time and coordinates, the assessment, `text`."""
    tip = dict(details.get("tip") or {})
    assessment = TipAssessment.model_validate(details["assessment"]) \
        if details.get("assessment") else None
    where = dict(tip.get("location") or {})
    place = where.get("address") or f"{where.get('lat')},{where.get('lon')}"
    who = f"枢纽 {tip.get('hub_id')} 工作人员目击" if tip.get("source") == "hub" else "群众线索"
    head = (f"【失踪儿童线索】案件 {case_id}：{who}，{people_time(str(tip.get('seen_at')), zone)}"
            f"在{place}。")
    if assessment is not None and assessment.summary:
        head += assessment.summary + "。"
    ask = " 请在指挥台研判。"
    # too long for the channel: the tipster's words give way (whole characters, "…"), never
    # the case, the time and place or what to do
    words = cut(str(tip.get("description", "")), max(limit - len(head) - len(ask), 0))
    text = cut(head + words + ask, limit)
    return {
        "type": TIP_PUSHED, "alert_id": f"T-{tip.get('tip_id')}", "case_id": case_id,
        "version": 1, "scope": "restricted", "kind": "tip", "tip_id": tip.get("tip_id"),
        "source": tip.get("source", "public"), "hub_id": tip.get("hub_id"),
        "seen_at": tip.get("seen_at"),
        "location": {k: where.get(k) for k in ("lat", "lon", "address") if k in where},
        "assessment": assessment.model_dump(mode="json") if assessment else None,
        "text": text,
    }


def check_body(case_id: str, details: dict[str, Any], limit: int, zone: str) -> dict[str, Any]:
    """The push of a local check to the checking county's head; of an overdue check (`count`)
    to the case leader and that head."""
    check = dict(details.get("check") or {"check_id": details.get("check_id")})
    if details.get("count"):
        count = details["count"]
        text = (f"【核查超时】案件 {case_id} 的核查 {check.get('check_id')}（"
                f"{details.get('check_region', '')}）已过时限未反馈（第 {count} 次提醒），"
                "请在指挥台反馈或跟进。")
        alert_id = f"K-{case_id}-{check.get('check_id')}-overdue-{details['count']}"
    else:
        due = people_time(str(check.get("due_at")), zone)
        text = (f"【核查任务】{check.get('organ_name', '')}：案件 {case_id} 有线索指向贵辖区"
                f"（线索 {check.get('tip_id', '')}），请于 {due}"
                "前核查并在指挥台反馈（属实 / 未发现 / 情况说明）。核查期间可查阅案件详情。")
        alert_id = f"K-{case_id}-{check.get('check_id')}"
    return {
        "type": TIP_PUSHED, "alert_id": alert_id,
        "case_id": case_id, "version": 1, "scope": "restricted", "kind": "check",
        "check_id": check.get("check_id"), "tip_id": check.get("tip_id"),
        "due_at": check.get("due_at"), "text": cut(text, limit),
    }


async def push(planner: Planner, event: CloudEvent) -> None:
    """Push a tip (or a check) to the people dispatch named in `details.notify`; nothing
    without a gateway configured, for a drill, or for a case notify has no alert of. (`event`
    as the consumer opened it: sealed fields readable while the case key exists.)"""
    ctx = planner.ctx
    template = ctx.settings.notify_group_apprise_url
    if not template or event.type not in TYPES:
        return
    data = CaseEvent.model_validate((await open_event(event, ctx.keys)).data)
    alert = await ctx.alerts.get(domain.alert_id_of(data.case_id))
    if alert is None or alert.exercise or alert.cancelled:
        return
    people = [p for p in data.details.get("notify") or [] if isinstance(p, dict)]
    members: list[Subscriber] = audience.group_members(alert, people, template)
    if not members:
        return
    make = tip_body if event.type == CASE_TIP_ATTACHED else check_body
    body = make(data.case_id, data.details, ctx.settings.notify_push_max_chars,
                ctx.settings.display_timezone)
    await ctx.subscribers.add_many(members)  # a retry finds its recipient
    # Not a version of the alert: nobody is recorded as its recipient (a Cancel goes only to
    # those the alert itself reached).
    await planner.fanout.publish(str(body["alert_id"]), [(m, body) for m in members], None)


async def purge_bodies(notify: Context, case_id: str) -> list[str]:
    """At the case's purge (issue 13): the tip and check push bodies of the case leave Redis and
    get tombstones on homeward.alerts.v1 (their sealed `text` is unreadable already, the case key
    being gone). Returns the body keys dropped; idempotent."""
    keys = sorted({r["body_key"] for r in await notify.ledger.of_case(case_id)
                   if r.get("body_key", "").startswith(("T-", "K-"))})
    for key in keys:
        if notify.keys is not None:
            await notify.keys.tombstone(topics.ALERTS, f"body:{key}")
        else:
            await notify.publisher.broker.publish(b"", topics.ALERTS, key=f"body:{key}".encode())
    if keys:
        await notify.ledger.redis.delete(*(f"notify:body:{key}" for key in keys))
    return keys
