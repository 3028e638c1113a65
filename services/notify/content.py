"""What recipients read, free of I/O: the push body of an alert version for each audience
(restricted: hubs and the case group; public: media and volunteers, without the reporter, the
family's phone, the ID number, the home address, suspect or vehicle), the cancellation (ids and
outcome only), and the push text, which ends with the alert's short code and verification link
(issue 17 §2)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from services.notify.domain import AlertState
from shared.display import DEFAULT_ZONE, age_on, local_date, people_time
from shared.phones import display_phone
from shared.text import cut, cut_bytes
from shared.verification import display_code, verify_url

__all__ = ["ALERT_CANCELLED", "ALERT_ISSUED", "cancel_body", "child_age", "push_body",
           "summary_text"]

ALERT_ISSUED = "homeward.alert.issued.v1"
ALERT_CANCELLED = "homeward.alert.cancelled.v1"


# Where the text's tail begins (summary_text): the short code, verification link and bulletin
# link, which a shortened text keeps.
_TAIL_MARKS = (" 核验码：", " 详见：")


def fit_bytes(text: str, max_bytes: int) -> str:
    """`text` (a summary_text) in at most `max_bytes` of UTF-8, for a channel that counts
    bytes (企业微信 群机器人: text content at most 2048 bytes; longer is refused with an errcode
    behind HTTP 200): as summary_text shortens, in bytes — the name and the description give
    way first, then the place and the suspect/vehicle words, to whole characters with "…"
    (shared.text.cut_bytes); the radius, whom to call, the code and the links stay whole. A
    text that is no summary is shortened at its end."""
    if len(text.encode()) <= max_bytes:
        return text
    at = next((at for at in (text.rfind(m) for m in _TAIL_MARKS) if at > 0), -1)
    head, tail = (text[:at], text[at:]) if at > 0 else (text, "")
    if len(tail.encode()) > max_bytes // 2:  # no summary's tail: the words were in the text
        head, tail = text, ""
    split = head.rfind("范围")
    body, end = (head[:split], head[split:]) if split > 0 else (head, "")
    room = max_bytes - len(tail.encode()) - len(end.encode())
    if room < 0:
        return cut_bytes(text, max_bytes)
    split = body.find("最后出现：")
    first, middle = (body[:split], body[split:]) if split > 0 else (body, "")
    first = cut_bytes(first, max(room - len(middle.encode()), room // 2))
    return first + cut_bytes(middle, room - len(first.encode())) + end + tail


def child_age(child: dict[str, Any], last_seen: dict[str, Any], zone: str) -> int | None:
    """The age as given, else completed years on the last-seen day (in the deployment's zone)
    from birth_date."""
    if child.get("age") is not None:
        return int(child["age"])
    try:
        born = date.fromisoformat(str(child.get("birth_date")))
        seen = datetime.fromisoformat(str(last_seen.get("at")))
    except ValueError:
        return None
    return age_on(born, local_date(seen, zone) if seen.tzinfo else seen.date())


def summary_text(child: dict[str, Any], last_seen: dict[str, Any], radius: float, contact: str,
                 link: str, limit: int, extra: str = "", zone: str = DEFAULT_ZONE,
                 code: str = "", verify_base: str = "") -> str:
    """The push text people read (hub staff, SMS/chat, CAP description), at most `limit`
    characters, always ending with the alert's short code, its verification link (issue 17
    §2: anyone handed a forwarded copy can check it) and the bulletin link. The last-seen time
    is shown in `zone` ("2026-11-30 20:00（北京时间）", shared.display) whatever offset it was
    sent with; the age is derived from birth_date when none was given."""
    tail = f" 详见：{link}"
    if code:
        check = f"，真伪核验：{verify_url(verify_base, code)}" if verify_base else ""
        tail = f" 核验码：{display_code(code)}{check}{tail}"
    sex = {"male": "男", "female": "女"}.get(str(child.get("sex")), "")
    years = child_age(child, last_seen, zone)
    age = f"{years}岁" if years is not None else ""
    at = people_time(str(last_seen["at"]), zone) if last_seen.get("at") else ""
    lead = (f"【儿童失踪协查】{child.get('name', '')}，{sex}{age}，"
            f"{child.get('height_cm') or '?'}cm。")
    seen = f"最后出现：{'，'.join(p for p in (last_seen.get('address', ''), at) if p)}。"
    end = f"范围{radius:g}公里。如有线索请联系{contact}。"
    # Too long: the description and the suspect/vehicle words give way (whole characters,
    # "…"), the description first, down to half the room; never the radius and whom to call.
    description = sentence(str(child.get("description", "") or ""))
    room = limit - len(tail) - len(lead) - len(seen) - len(end)
    if len(description) + len(extra) > room:
        keep = max(room - len(extra), room // 2, 0)
        description = cut(description, keep) if keep > 1 else ""
        extra = cut(extra, max(room - len(description), 0))
    return cut(lead + description + seen + extra, max(limit - len(tail) - len(end), 0)) \
        + end + tail


def sentence(text: str) -> str:
    """`text` ended as a sentence ("。" added unless it ends in sentence punctuation), so the
    words after it do not run on: "…黑色运动鞋最后出现：" reads as one phrase."""
    text = text.strip()
    return text if not text or text[-1] in _ENDS else text + "。"


_ENDS = "。！？!?；;…."


def _child_public(child: dict[str, Any]) -> dict[str, Any]:
    keep = ("name", "sex", "birth_date", "age", "height_cm", "weight_kg", "description",
            "photo_urls")
    return {k: child[k] for k in keep if k in child}


def push_body(alert: AlertState, scope: Literal["restricted", "public"], link: str,
              contact: str, limit: int, now: datetime,
              zone: str = DEFAULT_ZONE, verify_base: str = "") -> dict[str, Any]:
    """The push for one recipient class. Public: no reporter, no family phone, no ID number,
    no home address, no suspect/vehicle; the official contact instead. `text` shows times in
    `zone` (Settings.display_timezone); `issued_at` and `last_seen.at` keep ISO 8601."""
    report = alert.report or {}
    child = dict(report.get("child") or {})
    seen = dict(report.get("last_seen") or {})
    circ = dict(report.get("circumstances") or {})
    body: dict[str, Any] = {
        "type": ALERT_ISSUED,
        "alert_id": alert.alert_id,
        "case_id": alert.case_id,
        "version": alert.version,
        # Alert for the first version and for the re-issue after a reopen; Update otherwise.
        "msg_type": alert.versions[-1].msg_type if alert.versions else "Alert",
        "scope": scope,
        "status": alert.status,
        "radius_km": alert.radius_km,
        "issued_at": now.isoformat(),
        "link": link,
        "short_code": alert.short_code,
        "verify_url": verify_url(verify_base, alert.short_code) if verify_base else "",
    }
    if scope == "restricted":
        leader = alert.leader or {}
        contact_text = contact
        if leader.get("phone"):
            contact_text = (f"{leader.get('name', '')}{leader.get('title', '')} "
                            f"{display_phone(str(leader['phone']))}")
        extra = ""
        if circ.get("suspect"):
            extra += sentence(f"嫌疑人：{circ['suspect']}")
        if circ.get("vehicle"):
            extra += sentence(f"车辆：{circ['vehicle']}")
        body.update({
            "child": child,
            "last_seen": seen,
            "circumstances": circ,
            "leader": leader or None,
            "contact": contact_text,
            "text": summary_text(child, seen, alert.radius_km, contact_text, link, limit, extra,
                                 zone, alert.short_code, verify_base),
        })
    else:
        public_child = _child_public(child)
        public_seen = {k: seen[k] for k in ("at", "address", "region_code", "lat", "lon")
                       if k in seen}
        body.update({
            "child": public_child,
            "last_seen": public_seen,
            "circumstances": {"kind": circ.get("kind", "missing")},
            "contact": contact,
            "text": summary_text(public_child, public_seen, alert.radius_km, contact, link,
                                 limit, zone=zone, code=alert.short_code,
                                 verify_base=verify_base),
        })
    return body


def cancel_body(alert: AlertState, now: datetime) -> dict[str, Any]:
    """A cancellation: ids and outcome only, no personal data."""
    return {
        "type": ALERT_CANCELLED,
        "alert_id": alert.alert_id,
        "case_id": alert.case_id,
        "version": alert.version,
        "msg_type": "Cancel",
        "status": alert.status,
        "reason": alert.outcome,
        "references": [v.version for v in alert.versions if v.msg_type != "Cancel"],
        "short_code": alert.short_code,
        "issued_at": now.isoformat(),
        "text": "该协查已解除（已找到）。" if alert.outcome != "false_report"
        else "该协查已撤销（虚假报告）。",
    }
