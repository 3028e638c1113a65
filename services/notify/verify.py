"""What the public verification page answers for a short code (issue 17 §2) — pure.

- `active`: a genuine alert still searching. If it is released to the public (and not a
  drill) the public details — those of the public push (services.notify.content.push_body
  "public": no family, reporter, ID number or suspect) — and the official contact; otherwise
  only that it is genuine and restricted, with the official contact.
- `ended`: genuine but found or withdrawn: "已找到，请停止转发" and nothing about the child.
- `unknown`: no alert of this platform has the code: advice not to trust the appeal."""

from __future__ import annotations

from typing import Any

from services.notify.content import push_body
from services.notify.domain import AlertState
from shared.display import people_time
from shared.i18n import message
from shared.verification import VerifyStatus, display_code


def poster_path(alert_id: str) -> str:
    return f"/api/v1/alerts/{alert_id}/poster.pdf"


def answer(alert: AlertState | None, code: str, lang: str, *, base_url: str, contact: str,
           limit: int, zone: str, verify_base: str, issuer: str) -> dict[str, Any]:
    """The JSON of GET /api/v1/verify/{code}: `status` (shared.verification.VerifyStatus),
    `code` as printed, a `message` in `lang`, and per status the fields above."""
    if alert is None:
        return {"status": VerifyStatus.unknown, "code": display_code(code),
                "message": message("verify_unknown", lang)}
    out: dict[str, Any] = {"code": display_code(alert.short_code), "issuer": issuer}
    if alert.cancelled:
        ended = alert.versions[-1].sent
        word = "verify_withdrawn" if alert.outcome == "false_report" else "verify_ended"
        return {**out, "status": VerifyStatus.ended, "message": message(word, lang),
                "ended_at": ended.isoformat(), "ended_at_text": people_time(ended, zone)}
    out.update(status=VerifyStatus.active, contact=contact, exercise=alert.exercise)
    if not alert.public_listed:
        return {**out, "public": False, "message": message("verify_restricted", lang)}
    latest = alert.versions[-1].sent
    cap_url = f"{base_url}/api/v1/alerts/{alert.alert_id}.xml"
    body = push_body(alert, "public", cap_url, contact, limit, latest, zone, verify_base)
    seen = dict(body["last_seen"])
    return {**out, "public": True, "message": message("verify_active", lang),
            "alert_id": alert.alert_id, "child": body["child"], "text": body["text"],
            "last_seen": {"at": seen.get("at"), "address": seen.get("address", ""),
                          "at_text": people_time(str(seen["at"]), zone) if seen.get("at")
                          else ""},
            "issued_at": alert.issued_at.isoformat(), "updated_at": latest.isoformat(),
            "cap_url": cap_url, "poster_url": f"{base_url}{poster_path(alert.alert_id)}"}
