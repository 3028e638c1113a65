"""The delivery ledger's record, free of I/O: what it says of a delivery (set once, when it is
claimed), how each receipt on homeward.deliveries.v1 folds into it (Redis rebuilt from the
topics gives the same record as the live path), why a delivery was dropped before a try, and
what a commander is shown of an error (a class of shared.events.DELIVERY_ERROR_CLASSES, issue
12)."""

from __future__ import annotations

from shared.events import DELIVERY_ERROR_CLASSES, DeliveryReceipt

__all__ = ["BODY_GONE", "CANCELLED", "DISABLED", "DROPPED_REASONS", "LEDGER_META", "NOT_REACHED",
           "SUPERSEDED", "error_class", "fold_receipt"]

# What a ledger record says of the delivery, set when it is created and never changed.
LEDGER_META = ("subscriber_id", "kind", "channel", "alert_id", "case_id", "version", "scope",
               "name", "body_key")


def fold_receipt(record: dict[str, str], receipt: DeliveryReceipt,
                 event_id: str = "") -> dict[str, str]:
    """The ledger record of a delivery after one of its receipts on homeward.deliveries.v1 (the
    same fields the live path writes, so the deliveries API answers the same)."""
    out = dict(record)
    if not out:
        body_scope = "restricted" if receipt.scope == "group" else receipt.scope
        out.update({"subscriber_id": receipt.subscriber_id, "kind": receipt.kind,
                    "channel": receipt.channel, "alert_id": receipt.alert_id,
                    "case_id": receipt.case_id, "version": str(receipt.version),
                    "scope": receipt.scope, "name": receipt.name,
                    "body_key": f"{receipt.alert_id}:{receipt.version}:{body_scope}"})
    at = receipt.at.isoformat()
    if receipt.status == "acknowledged":
        out.update(state="acknowledged", acked_at=at, at=at)
    elif receipt.status == "ack_overdue":
        tail = event_id.rpartition(":overdue:")[2]
        reminders = int(tail) if tail.isdigit() else int(out.get("reminders", "0") or 0) + 1
        out.update(state="sent", overdue="1", reminders=str(reminders), at=at)
    elif out.get("state") != "acknowledged":
        out.update(state=receipt.status, attempts=str(receipt.attempts),
                   http_status=str(receipt.http_status or ""),
                   error="" if receipt.status == "sent" else receipt.error, at=at)
        if receipt.since is not None:
            out["since"] = receipt.since.isoformat()
    return out



# Why a delivery was dropped before a try (services.notify.delivery): notify's own words.
BODY_GONE, CANCELLED, DISABLED = "push body expired", "alert cancelled", "subscriber disabled"
NOT_REACHED, SUPERSEDED = "alert never reached", "superseded by a later version"
DROPPED_REASONS = (BODY_GONE, CANCELLED, DISABLED, NOT_REACHED, SUPERSEDED)


def error_class(text: str) -> str:
    """What a commander is shown of a delivery's error: a class of DELIVERY_ERROR_CLASSES (or
    a reason notify gave itself). Receipts written before errors were classes (issue 12) held
    the socket's text; it is reduced here, never shown."""
    if not text or text in DELIVERY_ERROR_CLASSES or text in DROPPED_REASONS:
        return text
    if len(text) == 8 and text.startswith("HTTP ") and text[5:].isdigit():
        return f"http_{text[5]}xx"
    if text.startswith("refused"):
        return "refused_by_policy"
    if text.startswith("apprise"):
        return "target_refused"
    return "timeout" if "Timeout" in text else "connect_failed"
