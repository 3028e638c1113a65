"""What notify keeps of a case, and what it drops at the purge (issue 13 §2).

Notify keeps only what it pushes: the report without the reporter (nobody is ever sent the
reporter; the official contact goes out instead). At `homeward.case.purged.v1` the alert's state
is logged again without its restricted content, every push body of the alert gets a tombstone
on the compacted homeward.alerts.v1 and leaves Redis (`notify:body:*`), and the hub consoles
forget the alert's pushes. The case's data key is gone by then (dispatch deleted it), so older
sealed copies in the log cannot be read either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.notify import domain, tip_push
from shared import topics

if TYPE_CHECKING:
    from services.notify.context import Context

BODY_SCOPES = ("restricted", "public", "cancel")


def pushed_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report as notify stores it: everything a push may carry, not the reporter."""
    return {k: v for k, v in report.items() if k != "reporter"}


async def purge_alert(notify: Context, case_id: str) -> list[str]:
    """Drop the alert's personal data everywhere notify holds it; idempotent. Returns the body
    keys tombstoned. Delivery jobs still queued for the alert carry no personal data (only
    their body's key): with the bodies gone, a worker drops them (`push body expired`)."""
    alert_id = domain.alert_id_of(case_id)
    if notify.keys is not None:
        notify.keys.learnt_purged(case_id)  # never served here again (shared.casekeys memo)
    async with notify.locked(alert_id):
        alert = await notify.alerts.get(alert_id)
        if alert is None:
            return []
        alert.report = alert.held_report = None
        await notify.save(alert)
    body_keys = [f"{alert_id}:{v.version}:{scope}" for v in alert.versions
                 for scope in BODY_SCOPES]
    for key in body_keys:
        if notify.keys is not None:
            await notify.keys.tombstone(topics.ALERTS, f"body:{key}")
        else:
            await notify.publisher.broker.publish(b"", topics.ALERTS, key=f"body:{key}".encode())
    await notify.ledger.redis.delete(*(f"notify:body:{key}" for key in body_keys))
    for hub_id in await notify.alerts.recipients(alert_id):
        await notify.feed.scrub(hub_id, alert_id)
    return body_keys + await tip_push.purge_bodies(notify, case_id)  # sightings (issue 16)
