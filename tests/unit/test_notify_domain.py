from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import xmlschema

from services.notify import content, delivery_rules, domain, formats, hubs, ledger_rules, views
from services.notify.addresses import is_public_address
from services.notify.audience import Subscriber
from services.notify.delivery_rules import RetryPolicy, backoff_s
from services.notify.domain import delivery_id, radius_km
from services.notify.subscribers import newest
from shared.events import CASE_MEMBER_ADDED, CASE_RELEASE_APPROVED, DeliveryReceipt
from tests.helpers import report_body

TIERS = [(1.0, 100.0), (2.0, 200.0), (3.0, 300.0)]


@pytest.mark.parametrize(
    ("minutes", "km"),
    [(0, 100), (59, 100), (60, 100), (61, 200), (120, 200), (150, 300), (180, 300), (181, 500),
     (60 * 24, 500), (-5, 100)],
)
def test_radius_grows_with_time_missing(minutes: int, km: float) -> None:
    assert radius_km(timedelta(minutes=minutes), TIERS, 500.0) == km


def test_delivery_id_is_stable_per_alert_version_and_recipient() -> None:
    a = delivery_id("A-1", 1, "S1")
    assert a == delivery_id("A-1", 1, "S1")
    assert len({a, delivery_id("A-1", 2, "S1"), delivery_id("A-1", 1, "S2")}) == 3


@pytest.mark.parametrize(
    ("address", "public"),
    [("127.0.0.1", False), ("10.1.2.3", False), ("192.168.1.1", False), ("172.16.0.1", False),
     ("169.254.169.254", False), ("::1", False), ("0.0.0.0", False), ("8.8.8.8", True),
     ("2001:4860:4860::8888", True)],
)
def test_ssrf_classification(address: str, public: bool) -> None:
    assert is_public_address(address) is public


# --- tiers, backoff, content, formats, hub loader ----------------------------------------------

CAP_XSD = Path(__file__).parents[2] / "services/notify/schema/CAP-v1.2.xsd"
NOW = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def test_next_boundary_walks_the_tiers_then_stops() -> None:
    seen = NOW
    assert domain.next_boundary(seen, NOW, TIERS) == seen + timedelta(hours=1, milliseconds=1)
    later = seen + timedelta(hours=2, minutes=1)
    assert domain.next_boundary(seen, later, TIERS) == seen + timedelta(hours=3, milliseconds=1)
    assert domain.next_boundary(seen, seen + timedelta(hours=4), TIERS) is None
    assert domain.next_boundary(seen, NOW, TIERS, unit_s=2.0) == seen + timedelta(seconds=2.001)


def test_backoff_is_jittered_exponential_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=30.0, max_attempts=6, retry_after_cap_s=30.0)
    delays = [backoff_s(a, policy) for a in range(1, 10)]
    assert all(min(30.0, 2 ** (a - 1)) / 2 <= d <= min(30.0, 2 ** (a - 1))
               for a, d in enumerate(delays, start=1))
    assert backoff_s(1, policy, retry_after=7) >= 7
    assert backoff_s(1, policy, retry_after=3600) == 30.0
    assert delivery_rules.parse_retry_after("12") == 12.0
    assert delivery_rules.parse_retry_after("Sun, 22 Nov 2026 02:00:30 GMT", NOW) == 30.0
    assert delivery_rules.parse_retry_after("soon") is None


def _alert(**overrides: object) -> domain.AlertState:
    body = report_body()
    body["child"]["id_number"] = "110101201905010011"
    values: dict[str, object] = dict(
        alert_id="A-140403-20261122-ABCDEF", case_id="140403-20261122-ABCDEF",
        region_code="140403", exercise=False, released=True, seen_at=NOW, lat=36.19, lon=113.11,
        radius_km=100.0, issued_at=NOW,
        versions=[domain.VersionInfo(version=1, msg_type="Alert", sent=NOW, radius_km=100.0)],
        report=body, leader={"name": "王局", "title": "局长", "phone": "0355-1234567",
                             "organ_code": "140403", "organ_name": "潞州分局"})
    values.update(overrides)
    return domain.AlertState.model_validate(values)


def test_public_push_carries_no_personal_data_of_the_family_and_fits_the_limit() -> None:
    alert = _alert()
    alert.report["child"]["description"] = "很长的描述" * 400  # type: ignore[index]
    public = content.push_body(alert, "public", "https://n/x.xml", "110", 1000, NOW)
    text = str(public)
    for secret in ("李红", "13800000000", "110101201905010011", "中年男子", "晋D·12345",
                   "0355-1234567", "0355 123 4567"):
        assert secret not in text
    assert len(public["text"]) <= 1000 and public["text"].endswith("https://n/x.xml")
    restricted = content.push_body(alert, "restricted", "https://n/x.xml", "110", 1000, NOW)
    assert restricted["circumstances"]["vehicle"] == "晋D·12345"
    # The leader's number in the form people dial (shared.phones display form).
    assert "0355 123 4567" in restricted["contact"] and len(restricted["text"]) <= 1000


def test_cancel_body_has_no_personal_data() -> None:
    alert = _alert()
    alert.cancelled, alert.outcome, alert.report = True, "false_report", None
    alert.bump("Cancel", NOW)
    body = content.cancel_body(alert, NOW)
    assert body["msg_type"] == "Cancel" and body["references"] == [1]
    assert "张小明" not in str(body) and body["reason"] == "false_report"


@pytest.mark.parametrize("scope", ["Public", "Restricted"])
def test_every_cap_message_is_valid_cap_1_2(scope: str) -> None:
    schema = xmlschema.XMLSchema(CAP_XSD)
    alert = _alert(exercise=scope == "Restricted")
    schema.validate(formats.cap_xml(alert, 1, scope, "s@x.cn", "https://n", "110", 1000).decode())  # type: ignore[arg-type]
    alert.radius_km = 200.0
    alert.bump("Update", NOW + timedelta(hours=1))
    xml = formats.cap_xml(alert, 2, scope, "s@x.cn", "https://n", "110", 1000).decode()  # type: ignore[arg-type]
    schema.validate(xml)
    assert "<msgType>Update</msgType>" in xml and "36.1900,113.1100 200" in xml
    assert "A-140403-20261122-ABCDEF.v1" in xml and "<language>zh-CN</language>" in xml
    alert.cancelled, alert.report = True, None
    alert.bump("Cancel", NOW + timedelta(hours=2))
    xml = formats.cap_xml(alert, 1, scope, "s@x.cn", "https://n", "110", 1000).decode()  # type: ignore[arg-type]
    schema.validate(xml)
    assert "<msgType>Cancel</msgType>" in xml and "张小明" not in xml


def test_atom_lists_only_released_real_active_alerts() -> None:
    listed = _alert()
    drill = _alert(alert_id="A-140403-20261122-DRILL1", exercise=True)
    held = _alert(alert_id="A-140403-20261122-HELD01", released=False)
    xml = formats.atom_feed([listed, drill, held], "https://n", "110", 1000).decode()
    assert xml.count("<entry>") == 1 and listed.alert_id in xml
    assert "13800000000" not in xml and "application/cap+xml" in xml


def test_spread_svg_rings_and_dots() -> None:
    svg = formats.spread_svg("c", 36.0, 113.0, 200.0, [100, 200, 300, 500],
                             [("甲<站>", 36.5, 113.0, "acknowledged"),
                              ("乙", 37.0, 113.0, "pushed"), ("丙", 39.0, 113.0, "not_yet"),
                              ("丁", 38.0, 113.0, "out_of_service")])
    assert svg.count("<circle") >= 4 + 1 + 4
    assert "甲&lt;站&gt;" in svg and "已确认 1" in svg and "未推送 1" in svg
    assert "丁：已停用" in svg and "已停用 1" in svg


@pytest.mark.parametrize(("best", "active", "mark"), [
    ("not_yet", True, "not_yet"),
    ("not_yet", False, "out_of_service"),  # closed, nothing reached it: not waiting for a push
    ("pushed", False, "pushed"),  # what reached it before it closed stays shown
    ("acknowledged", False, "acknowledged"),
    ("pushed", True, "pushed"),
    ("acknowledged", True, "acknowledged"),
])
def test_a_hub_out_of_service_is_marked_so_unless_something_reached_it(
        best: str, active: bool, mark: str) -> None:
    assert views.hub_mark(best, active) == mark
    assert mark in formats.COLOURS and mark in formats.LABELS


def test_every_chinese_airport_loads_as_a_hub() -> None:
    loaded = list(hubs.airports())
    assert len(loaded) > 150
    pek = next(h for h in loaded if h.hub_id == "IATA-PEK")
    assert "Beijing" in pek.name and pek.region_code and pek.region_code.startswith("11")
    assert pek.channel.type == "console"


def test_station_csv_format() -> None:
    lines = [",".join(hubs.CSV_COLUMNS),
             "RAIL-CZ,长治站,railway,36.1956,113.1162,140403,console,",
             "BUS-CZ,长治客运东站,bus,36.199,113.14,,webhook,https://hub.example.cn/h"]
    got = list(hubs.stations(lines))
    assert [h.hub_id for h in got] == ["RAIL-CZ", "BUS-CZ"]
    assert got[1].region_code and got[1].channel.type == "webhook"
    with pytest.raises(hubs.HubFileError, match="line 2"):
        list(hubs.stations([lines[0], "X,y,ship,1,2,,console,"]))
    with pytest.raises(hubs.HubFileError, match="missing columns"):
        list(hubs.stations(["hub_id,name"]))
    with pytest.raises(hubs.HubFileError, match="line 3: the location lies outside region_code"):
        list(hubs.stations([lines[0], lines[1], "BJX,北京西站,railway,39.8947,116.322,140403,"
                            "console,"]))


# --- rebuilding notify's Redis from the topics ---------------------------------------------------


def _receipt(status: str, at: datetime, **extra: object) -> DeliveryReceipt:
    fields: dict[str, object] = {
        "delivery_id": "msg_1", "alert_id": "A-140403-20261123-ABCDEF",
        "case_id": "140403-20261123-ABCDEF", "version": 2, "subscriber_id": "hub-1",
        "scope": "restricted", "channel": "webhook", "status": status, "http_status": 204,
        "attempts": 1, "at": at, "kind": "hub", "name": "长治北站", **extra}
    return DeliveryReceipt.model_validate(fields)


def test_fold_receipt_gives_the_ledger_record_the_live_path_writes() -> None:
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    record = ledger_rules.fold_receipt({}, _receipt("sent", t0))
    assert record == {
        "subscriber_id": "hub-1", "kind": "hub", "channel": "webhook",
        "alert_id": "A-140403-20261123-ABCDEF", "case_id": "140403-20261123-ABCDEF",
        "version": "2", "scope": "restricted", "name": "长治北站",
        "body_key": "A-140403-20261123-ABCDEF:2:restricted", "state": "sent", "attempts": "1",
        "http_status": "204", "error": "", "at": t0.isoformat()}
    t1, t2 = t0 + timedelta(minutes=10), t0 + timedelta(minutes=12)
    record = ledger_rules.fold_receipt(record, _receipt("ack_overdue", t1), "msg_1:overdue:1")
    assert (record["state"], record["overdue"], record["reminders"]) == ("sent", "1", "1")
    record = ledger_rules.fold_receipt(record, _receipt("acknowledged", t2))
    assert (record["state"], record["acked_at"], record["at"]) == (
        "acknowledged", t2.isoformat(), t2.isoformat())
    # A redelivered `sent` receipt does not undo the acknowledgement.
    assert ledger_rules.fold_receipt(record, _receipt("sent", t0))["state"] == "acknowledged"


def test_fold_receipt_of_a_group_member_keys_the_restricted_body() -> None:
    at = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    record = ledger_rules.fold_receipt({}, _receipt("dead", at, scope="group", kind="member",
                                              http_status=None, error="timeout"))
    assert record["body_key"].endswith(":2:restricted")
    assert (record["state"], record["http_status"], record["error"]) == ("dead", "", "timeout")


def test_fold_notes_follows_dispatch_events() -> None:
    notes = domain.CaseNotes()
    member = {"name": "王检", "title": "检察官", "phone": "13900000000"}
    added = {"case_id": "140403-20261123-ABCDEF", "region_code": "140403", "actor": "x",
             "reason": "", "at": "2026-11-23T12:00:00Z", "details": {"member": member}}
    for _ in range(2):  # a redelivery adds nobody twice
        notes = domain.fold_notes(notes, CASE_MEMBER_ADDED, added)
    notes = domain.fold_notes(notes, CASE_RELEASE_APPROVED, {})
    assert notes.members == [member] and notes.released and not notes.found


def test_a_second_report_adds_its_details_and_keeps_the_first_sighting() -> None:
    first = report_body()
    second = report_body(child__description="背红色书包", child__photo_urls=[
        "https://example.org/p.jpg", "https://example.org/q.jpg"],
        circumstances__vehicle="晋D·12345", circumstances__notes="父亲补充",
        last_seen__address="另一个地址")
    merged = domain.merge_report(first, second)
    assert merged["child"]["description"] == "蓝色羽绒服，黑色运动鞋；背红色书包"
    assert merged["child"]["photo_urls"] == ["https://example.org/p.jpg",
                                             "https://example.org/q.jpg"]
    assert merged["circumstances"]["vehicle"] == "晋D·12345"  # not repeated
    assert merged["circumstances"]["notes"] == "父亲补充"
    assert merged["last_seen"] == first["last_seen"]  # the radius grows from the first
    assert first["child"]["description"] == "蓝色羽绒服，黑色运动鞋"  # the input is unchanged
    assert domain.merge_report(merged, second) == merged  # the same details twice: no change


def _copy(revision: int, secret: str) -> Subscriber:
    return Subscriber.model_validate({
        "subscriber_id": "H-1", "kind": "hub", "name": "站", "secret": secret,
        "location": {"lat": 36.2, "lon": 113.1}, "channel": {"type": "console"},
        "revision": revision})


@pytest.mark.parametrize(("logged", "stored", "kept"), [
    ((2, "log"), (1, "redis"), "log"),     # Redis lags the log (a write lost after the publish)
    ((1, "log"), (2, "redis"), "redis"),   # a change written since the log was read
    ((3, "log"), (3, "redis"), "log"),     # the same change: the system of record
    ((0, "log"), None, "log"),             # not in Redis, or no key opens Redis's copy
    ((0, "log"), (0, "redis"), "log"),     # records from before revisions
])
def test_the_newer_copy_of_a_subscriber_is_kept(
        logged: tuple[int, str], stored: tuple[int, str] | None, kept: str) -> None:
    got = newest(_copy(*logged), _copy(*stored) if stored else None)
    assert got.secret == kept
