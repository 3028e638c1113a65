"""The release preview (issue 17 §4): what the public would receive if the case were released
now — the public push text, the public CAP and poster URLs, the audience within the current
radius by kind — and the hash (shared.release.content_hash) dispatch checks at release."""

from __future__ import annotations

from services.notify import content
from services.notify.audience import PUBLIC_KINDS, SubscriberKind
from services.notify.domain import AlertState
from services.notify.handlers import Notify
from services.notify.verify import poster_path
from shared.release import ReleasePreview, content_hash


async def cancel_preview(notify: Notify, alert: AlertState, outcome: str) -> ReleasePreview:
    """What every recipient so far would receive if the search ended now with `outcome`
    (the Cancel: ids and outcome only), and how many of each kind they are."""
    ended = alert.model_copy(deep=True)
    ended.cancelled, ended.outcome, ended.report, ended.leader = True, outcome, None, None
    ended.bump("Cancel", notify.clock(), note=outcome)
    body = content.cancel_body(ended, notify.clock())
    recipients = await notify.alerts.recipients(alert.alert_id)
    counts: dict[str, int] = {}
    for sub in await notify.subscribers.get_many(list(recipients)):
        if sub.active:
            counts[sub.kind.value] = counts.get(sub.kind.value, 0) + 1
    base = notify.settings.notify_url.rstrip("/")
    return ReleasePreview(
        case_id=alert.case_id, action="cancel", content_hash=content_hash(body),
        text=str(body["text"]), cap_url=notify.link(alert.alert_id),
        poster_url=f"{base}{poster_path(alert.alert_id)}", audience=counts,
        radius_km=alert.radius_km, short_code=alert.short_code)


async def audience(notify: Notify, alert: AlertState) -> dict[str, int]:
    """Active subscribers within the alert's current radius by kind (drills: those taking
    drills only), as the fan-out after release would reach them."""
    counts = {}
    for kind in (SubscriberKind.hub, *PUBLIC_KINDS):
        subs = await notify.subscribers.within(kind, alert.lat, alert.lon, alert.radius_km)
        counts[kind.value] = sum(1 for s in subs if s.drills or not alert.exercise)
    return counts


async def release_preview(notify: Notify, alert: AlertState) -> ReleasePreview:
    settings = notify.settings
    body = content.push_body(alert, "public", notify.link(alert.alert_id),
                            settings.notify_official_contact, settings.notify_push_max_chars,
                            notify.clock(), settings.display_timezone, notify.verify_base())
    base = settings.notify_url.rstrip("/")
    return ReleasePreview(
        case_id=alert.case_id, content_hash=content_hash(body), text=str(body["text"]),
        cap_url=f"{notify.link(alert.alert_id)}?scope=public",
        poster_url=f"{base}{poster_path(alert.alert_id)}",
        audience=await audience(notify, alert), radius_km=alert.radius_km,
        short_code=alert.short_code)
