"""CAP 1.2 XML, the Atom feed of active public alerts, and the SVG picture of the spread —
pure renderings of an AlertState (no I/O).

Every string these writers emit — element text and attribute values alike — passes through
`shared.text.xml_text`, so whatever is stored (a control character in an old event, a name a
subscriber registered) no document is ever ill-formed (issue 11 §5). Times people read (CAP
`description`, Atom `summary`) are in the deployment's zone; CAP `sent`/`effective` and Atom
`updated` keep ISO 8601 with an offset."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from xml.etree import ElementTree as ET

from services.notify.content import push_body
from services.notify.domain import AlertState
from shared.display import DEFAULT_ZONE
from shared.text import xml_text
from shared.urls import as_uri
from shared.verification import display_code, verify_url

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
BEIJING = timezone(timedelta(hours=8))
ISSUER = "Homeward 儿童失踪快速查找"  # CAP senderName, the poster's and /verify's issuer


def cap_time(moment: datetime) -> str:
    """CAP dateTime: no fractional seconds, explicit offset (never Z)."""
    return moment.astimezone(BEIJING).replace(microsecond=0).isoformat()


def cap_identifier(alert_id: str, version: int) -> str:
    return f"{alert_id}.v{version}"


def cap_references(sender: str, alert_id: str, versions: list[tuple[int, datetime]]) -> str:
    """CAP 1.2 `references`: the earlier messages as space-separated `sender,identifier,sent`
    triples (OASIS CAP 1.2 §3.2.1, "references"), in version order. `versions`: (version, its
    `sent`) of the messages referenced — per recipient, those it received."""
    return " ".join(f"{sender},{cap_identifier(alert_id, v)},{cap_time(sent)}"
                    for v, sent in sorted(versions, key=lambda vs: vs[0]))


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = xml_text(text)
    return el


def cap_xml(alert: AlertState, version: int, scope: Literal["Public", "Restricted"],
            sender: str, link: str, contact: str, limit: int,
            zone: str = DEFAULT_ZONE, verify_base: str = "",
            pushed: dict[str, Any] | None = None) -> bytes:
    """One CAP 1.2 message for `version` of the alert. A cancelled alert renders every version
    as its Cancel, with no personal data. `zone`: where the description's times are shown.
    `pushed`: the push body of that version and scope as it went out (its content, not the
    latest); without it the content is rendered from the alert's state."""
    info_v = next(v for v in alert.versions if v.version == version)
    if alert.cancelled:
        info_v = alert.versions[-1]
    ET.register_namespace("", CAP_NS)
    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", cap_identifier(alert.alert_id, info_v.version))
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(info_v.sent))
    _sub(root, "status", alert.status)
    _sub(root, "msgType", info_v.msg_type)
    _sub(root, "source", "Homeward")
    _sub(root, "scope", scope)
    if scope == "Restricted":
        _sub(root, "restriction", "仅限公安机关、专案组及交通枢纽值守人员")
    if info_v.msg_type != "Alert":
        _sub(root, "references", cap_references(
            sender, alert.alert_id, [(v.version, v.sent) for v in alert.versions
                                     if v.version < info_v.version]))
    _sub(root, "incidents", alert.case_id)
    info = _sub(root, "info")
    _sub(info, "language", "zh-CN")
    _sub(info, "category", "Rescue")
    if alert.cancelled:
        _sub(info, "event", "儿童失踪协查（已解除）")
        _sub(info, "responseType", "AllClear")
        _sub(info, "urgency", "Past")
        _sub(info, "severity", "Minor")
        _sub(info, "certainty", "Observed")
        _sub(info, "senderName", ISSUER)
        _sub(info, "headline", f"协查已解除 {alert.case_id}")
        word = "撤销" if alert.outcome == "false_report" else "解除"
        _sub(info, "description", f"该协查已{word}，个人信息已移除，请停止转发。"
                                  f"核验码：{display_code(alert.short_code)}")
        _sub(info, "web", link)
        _sub(info, "contact", contact)
    else:
        body = pushed or push_body(alert, "restricted" if scope == "Restricted" else "public",
                                   link, contact, limit, info_v.sent, zone, verify_base)
        child: dict[str, Any] = body["child"]
        _sub(info, "event", "儿童失踪协查")
        _sub(info, "responseType", "Monitor")
        _sub(info, "urgency", "Immediate")
        _sub(info, "severity", "Severe")
        _sub(info, "certainty", "Likely")
        _sub(info, "effective", cap_time(info_v.sent))
        _sub(info, "senderName", ISSUER)
        _sub(info, "headline", f"儿童失踪协查：{child.get('name', '')}")
        _sub(info, "description", body["text"])
        _sub(info, "instruction", f"如发现请立即联系{body['contact']}，勿自行处置。")
        _sub(info, "web", link)
        _sub(info, "contact", str(body["contact"]))
        for url in (child.get("photo_urls") or [])[:3]:
            res = _sub(info, "resource")
            _sub(res, "resourceDesc", "照片")
            _sub(res, "mimeType", "image/jpeg")
            _sub(res, "uri", as_uri(str(url)))  # a link stored before the rule, made valid
    area = _sub(info, "area")
    _sub(area, "areaDesc", f"最后出现地点周边 {info_v.radius_km:g} 公里")
    _sub(area, "circle", f"{alert.lat:.4f},{alert.lon:.4f} {info_v.radius_km:g}")
    geocode = _sub(area, "geocode")
    _sub(geocode, "valueName", "GB/T2260")
    _sub(geocode, "value", alert.region_code)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def atom_feed(alerts: list[AlertState], base_url: str, contact: str, limit: int,
              now: datetime | None = None, zone: str = DEFAULT_ZONE,
              verify_base: str = "", ended: list[AlertState] | None = None) -> bytes:
    """Atom (RFC 4287) feed of active public alerts; each entry links its CAP message (signed
    by the issuer, services.notify.signing) and its verification page. `ended`: public alerts
    cancelled lately, each an entry of its Cancel without personal data (ids and outcome), so
    feed-only readers withdraw the alert (issue 18 §5)."""
    now = now or datetime.now(UTC)
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None,
            **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}",
                           {k: xml_text(v) for k, v in attrs.items()})
        if text is not None:
            el.text = xml_text(text)
        return el

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", f"{base_url}/api/v1/alerts/active.atom")
    sub(feed, "title", "Homeward 儿童失踪协查（公开）")
    ended = [a for a in ended or [] if a.cancelled]
    updated = max([a.versions[-1].sent for a in [*alerts, *ended]], default=now)
    sub(feed, "updated", cap_time(updated))
    sub(sub(feed, "author"), "name", "Homeward")
    sub(feed, "link", rel="self", href=f"{base_url}/api/v1/alerts/active.atom")
    for alert in alerts:
        if not alert.public_listed:
            continue
        cap_url = f"{base_url}/api/v1/alerts/{alert.alert_id}.xml"
        body = push_body(alert, "public", cap_url, contact, limit, alert.versions[-1].sent,
                         zone, verify_base)
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:homeward:alert:{alert.alert_id}")
        sub(entry, "title", f"儿童失踪协查：{body['child'].get('name', '')}")
        sub(entry, "updated", cap_time(alert.versions[-1].sent))
        sub(entry, "link", rel="alternate", type="application/cap+xml", href=cap_url)
        if verify_base:
            sub(entry, "link", rel="related", type="text/html",
                href=verify_url(verify_base, alert.short_code))
        sub(entry, "summary", body["text"])
    for alert in ended:
        cap_url = f"{base_url}/api/v1/alerts/{alert.alert_id}.xml"
        word = "撤销" if alert.outcome == "false_report" else "解除"
        entry = sub(feed, "entry")
        sub(entry, "id", f"urn:homeward:alert:{alert.alert_id}")
        sub(entry, "title", f"协查已{word} {alert.case_id}")
        sub(entry, "updated", cap_time(alert.versions[-1].sent))
        sub(entry, "link", rel="alternate", type="application/cap+xml", href=cap_url)
        sub(entry, "summary", f"该协查已{word}，请停止转发。核验码："
                              f"{display_code(alert.short_code)}")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="utf-8")


# --- the picture of the spread -----------------------------------------------------------------

COLOURS = {"acknowledged": "#2e7d32", "pushed": "#f9a825", "not_yet": "#9e9e9e",
           "out_of_service": "#5d4037"}
LABELS = {"acknowledged": "已确认", "pushed": "已推送", "not_yet": "未推送",
          "out_of_service": "已停用"}


def _esc(text: str) -> str:
    """Text or attribute value for the SVG: XML characters only, markup escaped."""
    return (xml_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def spread_svg(case_id: str, lat: float, lon: float, current_km: float,
               tiers_km: list[float], hubs: list[tuple[str, float, float, str]],
               size: int = 520) -> str:
    """Concentric rings at the tier radii around the last-seen point; every hub a dot coloured
    by acknowledged / pushed / not yet / out of service (services.notify.views.hub_mark), with
    a legend counting each. `hubs` are (name, lat, lon, state), state a key of COLOURS."""
    max_km = max(tiers_km) if tiers_km else 500.0
    half = size / 2
    scale = (half - 30) / max_km  # px per km
    cos_lat = math.cos(math.radians(lat))

    def xy(p_lat: float, p_lon: float) -> tuple[float, float]:
        dx = (p_lon - lon) * 111.32 * cos_lat
        dy = (p_lat - lat) * 110.57
        return half + dx * scale, half - dy * scale

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 70}" '
             f'viewBox="0 0 {size} {size + 70}" font-family="sans-serif" font-size="12">',
             f"<title>{_esc(case_id)} 协查范围</title>",
             f'<rect width="{size}" height="{size + 70}" fill="#ffffff"/>']
    for km in sorted(tiers_km, reverse=True):
        current = abs(km - current_km) < 1e-9
        parts.append(f'<circle cx="{half:.1f}" cy="{half:.1f}" r="{km * scale:.1f}" '
                     f'fill="{"#e3f2fd" if km <= current_km else "none"}" '
                     f'stroke="{"#1565c0" if current else "#90a4ae"}" '
                     f'stroke-width="{2 if current else 1}"/>')
        parts.append(f'<text x="{half + 3:.1f}" y="{half - km * scale + 14:.1f}" '
                     f'fill="#455a64">{km:g} 公里</text>')
    parts.append(f'<circle cx="{half:.1f}" cy="{half:.1f}" r="5" fill="#c62828"/>')
    parts.append(f'<text x="{half + 8:.1f}" y="{half + 4:.1f}" fill="#c62828">最后出现地点</text>')
    for name, h_lat, h_lon, state in hubs:
        x, y = xy(h_lat, h_lon)
        if not (0 <= x <= size and 0 <= y <= size):
            continue
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{COLOURS[state]}" '
                     f'data-state="{_esc(state)}"><title>{_esc(name)}：{LABELS[state]}</title></circle>')
    y0 = size + 20
    counts = {s: sum(1 for h in hubs if h[3] == s) for s in COLOURS}
    for i, (state, colour) in enumerate(COLOURS.items()):
        x0 = 20 + i * 125
        parts.append(f'<circle cx="{x0}" cy="{y0}" r="6" fill="{colour}"/>')
        parts.append(f'<text x="{x0 + 12}" y="{y0 + 4}">{LABELS[state]} {counts[state]}</text>')
    parts.append(f'<text x="20" y="{y0 + 30}" fill="#455a64">当前范围 {current_km:g} 公里 · '
                 f'枢纽 {len(hubs)} 个</text>')
    parts.append("</svg>")
    return "\n".join(parts)
