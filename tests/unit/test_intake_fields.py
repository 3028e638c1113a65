"""Intake fields as call-takers really send them (issue 11 §3–7): phones, ID numbers, free text,
times people read, and errors that name the field to correct. The examples of the issue and
more of the same kind; refusals through the API (422 naming the field)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.alert.app import create_app
from services.notify import content
from shared.auth import Role, mint_token
from shared.display import people_time
from shared.phones import PhoneError, parse_phone
from shared.report import Report, ReportAccepted
from shared.settings import Settings
from tests.helpers import report_body


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def refused(client: TestClient, body: dict[str, Any], lang: str = "zh-CN") -> dict[str, Any]:
    token = mint_token(Settings(), Role.operator, "140403")
    response = client.post("/api/v1/reports", json=body, headers={
        "Authorization": f"Bearer {token}", "Accept-Language": lang})
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# --- phones -------------------------------------------------------------------------------------

PHONES_ACCEPTED = [
    # typed, E.164, extension, display
    ("139-0000-1111", "+8613900001111", "", "139 0000 1111"),
    ("+86 139 0000 1111", "+8613900001111", "", "139 0000 1111"),
    ("0086 139 0000 1111", "+8613900001111", "", "139 0000 1111"),
    ("13900001111", "+8613900001111", "", "139 0000 1111"),
    ("139 0000 1111", "+8613900001111", "", "139 0000 1111"),
    ("(139) 0000-1111", "+8613900001111", "", "139 0000 1111"),
    ("１３９－００００－１１１１", "+8613900001111", "", "139 0000 1111"),
    ("＋８６ １３９ ００００ １１１１", "+8613900001111", "", "139 0000 1111"),
    ("0355-202-1234", "+863552021234", "", "0355 202 1234"),
    ("0355-1234567", "+863551234567", "", "0355 123 4567"),
    ("(0351)7654321", "+863517654321", "", "0351 765 4321"),
    ("010-8888 6666 转 801", "+861088886666", "801", "010 8888 6666 转 801"),
    ("010-88886666分机801", "+861088886666", "801", "010 8888 6666 转 801"),
    ("010-88886666 ext. 801", "+861088886666", "801", "010 8888 6666 转 801"),
    ("010-88886666#801", "+861088886666", "801", "010 8888 6666 转 801"),
    ("0355-1234567-801", "+863551234567", "801", "0355 123 4567 转 801"),
    ("0355-202-1234-801", "+863552021234", "801", "0355 202 1234 转 801"),
    ("010-8888-6666-801", "+861088886666", "801", "010 8888 6666 转 801"),
    ("0351 765 4321-12", "+863517654321", "12", "0351 765 4321 转 12"),
    ("139·0000·1111", "+8613900001111", "", "139 0000 1111"),
    ("0355・202・1234", "+863552021234", "", "0355 202 1234"),
    ("+86 10 8888 6666", "+861088886666", "", "010 8888 6666"),
    ("+852 9123 4567", "+85291234567", "", "+852 9123 4567"),
    ("852 9123 4567", "+85291234567", "", "+852 9123 4567"),
    ("00852-2123-4567", "+85221234567", "", "+852 2123 4567"),
    ("+853 6612 3456", "+85366123456", "", "+853 6612 3456"),
    ("+886 912 345 678", "+886912345678", "", "+886 912 345 678"),
    ("+1 415 555 2671", "+14155552671", "", "+1 415-555-2671"),
    ("+44 20 7946 0958", "+442079460958", "", "+44 20 7946 0958"),
    ("+81 90-1234-5678", "+819012345678", "", "+81 90-1234-5678"),
]
PHONES_REFUSED = ["12345", "23800000000", "1390000111", "139000011112", "abc", "电话",
                  "0000-140403-01", "+86", "-", "0912 345 678"]


@pytest.mark.parametrize(("typed", "e164", "ext", "display"), PHONES_ACCEPTED)
def test_phones_as_people_type_them_are_stored_in_e164_and_display_form(
    typed: str, e164: str, ext: str, display: str
) -> None:
    reporter = Report.model_validate(report_body(reporter__phone=typed)).reporter
    assert (reporter.phone, reporter.phone_ext, reporter.phone_display) == (e164, ext, display)
    again = Report.model_validate(report_body(reporter__phone=reporter.phone,
                                              reporter__phone_ext=reporter.phone_ext)).reporter
    assert again == reporter  # a stored report validates to itself (events are re-read)


@pytest.mark.parametrize("typed", PHONES_REFUSED)
def test_what_is_plainly_not_a_phone_is_422_on_reporter_phone(client: TestClient,
                                                               typed: str) -> None:
    with pytest.raises(PhoneError):
        parse_phone(typed)
    error = refused(client, report_body(reporter__phone=typed))
    assert (error["field"], error["details"][0]["code"]) == ("reporter.phone", "phone_format")
    assert "电话号码" in error["message"]


def test_the_same_caller_typed_two_ways_is_one_number() -> None:
    one = Report.model_validate(report_body(reporter__phone="139-1234-5678"))
    two = Report.model_validate(report_body(reporter__phone="+86 139 1234 5678"))
    assert one.reporter.phone == two.reporter.phone == "+8613912345678"


# --- ID numbers ---------------------------------------------------------------------------------

# 11010120190501019X: 北京东城, born 2019-05-01 (the example child's birth date), check X.
ID_ACCEPTED = [
    ("11010120190501019X", "11010120190501019X"),
    ("11010120190501019x", "11010120190501019X"),
    ("１１０１０１２０１９０５０１０１９ｘ", "11010120190501019X"),
    ("110101 20190501 019X", "11010120190501019X"),
    ("110101-20190501-019x", "11010120190501019X"),
    ("140403201905010012", "140403201905010012"),
    ("500157201905014224", "500157201905014224"),
]
ID_REFUSED = [
    ("110101201905010191", "id_checksum"),  # last character mistyped
    ("110101201905010190", "id_checksum"),
    ("11010120190510019X", "id_checksum"),  # two digits swapped
    ("140403201905010017", "id_checksum"),
    ("140403201905010022", "id_checksum"),  # one digit mistyped
    ("12345", "id_format"),
    ("11010120190501019", "id_format"),
    ("11010120190501019XX", "id_format"),
    ("1101012019050101A3", "id_format"),
    ("11010120190230001X", "id_birth_date"),  # 30 February, check character right
]


@pytest.mark.parametrize(("typed", "stored"), ID_ACCEPTED)
def test_id_numbers_are_checked_folded_and_upper_cased(typed: str, stored: str) -> None:
    child = Report.model_validate(report_body(child__id_number=typed)).child
    assert child.id_number == stored


@pytest.mark.parametrize(("typed", "code"), ID_REFUSED)
def test_a_wrong_id_number_is_422_on_child_id_number(client: TestClient, typed: str,
                                                     code: str) -> None:
    error = refused(client, report_body(child__id_number=typed))
    assert (error["field"], error["details"][0]["code"]) == ("child.id_number", code)


def test_an_id_number_of_another_birth_date_is_refused_naming_both_fields(
    client: TestClient
) -> None:
    body = report_body(child__id_number="11010120190501019X", child__birth_date="2019-06-01")
    error = refused(client, body)
    assert (error["field"], error["details"][0]["code"]) == ("child.id_number",
                                                             "id_birth_mismatch")
    assert "child.birth_date" in error["message"] and "2019-05-01" in error["message"]
    english = refused(client, body, "en")["message"]
    assert "child.birth_date" in english and "2019-06-01" in english


def test_the_birth_date_comes_from_the_id_number_when_only_that_is_given() -> None:
    body = report_body(child__id_number="11010120190501019X", child__birth_date=None)
    assert Report.model_validate(body).child.birth_date == date(2019, 5, 1)


# --- errors name the field to correct -----------------------------------------------------------

@pytest.mark.parametrize(("override", "field", "code"), [
    ({"child__birth_date": (datetime.now(UTC) + timedelta(days=2)).date().isoformat()},
     "child.birth_date", "birth_in_future"),
    ({"child__birth_date": "2099-01-01"}, "child.birth_date", "birth_in_future"),
    ({"child__birth_date": None, "child__age": 30}, "child.age", "not_a_minor"),
    ({"child__birth_date": "2001-01-01"}, "child.birth_date", "not_a_minor"),
    ({"child__birth_date": None}, "child.birth_date", "birth_date_or_age"),
    ({"last_seen__at": "2019-04-30T10:00:00+08:00"}, "last_seen.at", "before_birth"),
    ({"subject": "woman", "child__sex": "male"}, "child.sex", "woman_sex"),
])
def test_cross_field_rules_name_the_field_the_operator_corrects(
    client: TestClient, override: dict[str, Any], field: str, code: str
) -> None:
    error = refused(client, report_body(**override))
    assert (error["field"], error["details"][0]["code"]) == (field, code)


# --- free text ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "stored"), [
    ("蓝色羽绒服\x0b黑色运动鞋", "蓝色羽绒服\n黑色运动鞋"),  # a word processor's line break
    ("第一行\r\n第二行\r第三行", "第一行\n第二行\n第三行"),
    ("红色\u2028书包\u2029", "红色\n书包"),
    ("蓝\x00色\x1b[31m外套\x7f\x85", "蓝色[31m外套"),
    ("Jose\u0301", "José"),  # NFC
    ("\ufeff帽子\ufffe\U0001fffe", "帽子"),  # a BOM pasted from a file is invisible too
    ("a\ud800b", "ab"),  # a lone surrogate (from a JSON \\ud800 escape)
    ("\t缩进\t保留", "缩进\t保留"),  # tab kept; edges stripped as before
])
def test_free_text_is_nfc_and_stripped_of_control_characters(typed: str, stored: str) -> None:
    report = Report.model_validate(report_body(child__description=typed,
                                               circumstances__notes=typed))
    assert report.child.description == report.circumstances.notes == stored


def test_a_name_is_one_line() -> None:
    report = Report.model_validate(report_body(child__name="张\n小明\x0b", reporter__name="李\t红"))
    assert (report.child.name, report.reporter.name) == ("张 小明", "李 红")


# --- times and ages people read -----------------------------------------------------------------

@pytest.mark.parametrize(("sent", "shown"), [
    ("2026-11-30T12:00:00Z", "2026-11-30 20:00（北京时间）"),
    ("2026-11-30T12:00:00+00:00", "2026-11-30 20:00（北京时间）"),
    ("2026-11-30T20:00:00+08:00", "2026-11-30 20:00（北京时间）"),
    ("2026-11-30T07:00:00-05:00", "2026-11-30 20:00（北京时间）"),
    ("2026-11-30T17:30:00+05:30", "2026-11-30 20:00（北京时间）"),
    ("2026-11-30T18:00:00Z", "2026-12-01 02:00（北京时间）"),  # the day changes too
])
def test_times_people_read_are_in_beijing_time_whatever_the_offset(sent: str,
                                                                   shown: str) -> None:
    assert people_time(sent) == shown
    assert people_time(sent, "Asia/Urumqi").endswith("（新疆时间）")


def test_push_text_shows_beijing_time_and_derives_the_age() -> None:
    child = {"name": "张小明", "sex": "male", "birth_date": "2019-12-01", "height_cm": 115}
    seen = {"at": "2026-11-30T12:00:00Z", "address": "长治"}
    text = content.summary_text(child, seen, 100, "110", "https://n", 1000)
    assert "2026-11-30 20:00（北京时间）" in text and "T12:00" not in text
    assert "男6岁" in text  # seven on 1 December, six when last seen
    assert "男7岁" in content.summary_text({**child, "birth_date": "2019-11-30"}, seen, 100,
                                          "110", "https://n", 1000)
    assert "男9岁" in content.summary_text({**child, "age": 9}, seen, 100, "110", "https://n",
                                          1000)


def test_an_unknown_display_zone_is_refused_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(display_timezone="Mars/Olympus")


# --- reports accepted before these rules ----------------------------------------------------------

def test_a_report_accepted_under_older_rules_is_read_back_never_refused() -> None:
    """Consumers re-read homeward.report.accepted.v1 from the log: an ID number or phone the
    older rules let through is kept as it was (refusing it would send an accepted case to the
    DLQ); what today's rules can normalise, they do."""
    old = report_body(child__id_number="110101201905010011",  # wrong check digit
                      child__birth_date="2019-06-01",
                      reporter__phone="010-1234567")  # 7 digits: too short in Beijing
    old["last_seen"]["at"] = "2026-11-22T09:30:00+08:00"
    data = {"report_id": "R1", "case_id": "140403-20261122-ABCDEF",
            "accepted_at": "2026-11-22T01:31:00+00:00", "operator": "op",
            "operator_region": "140403", "report": old}
    accepted = ReportAccepted.model_validate(data)
    assert accepted.report.child.id_number == "110101201905010011"
    assert accepted.report.reporter.phone == "010-1234567"
    fresh = ReportAccepted.model_validate(
        {**data, "report": {**old, "reporter": {"name": "李红", "phone": "138-0000-0000"}}})
    assert fresh.report.reporter.phone == "+8613800000000"
    with pytest.raises(ValidationError):  # at intake the same report is refused
        Report.model_validate(old)


def test_intake_names_the_photo_link_to_correct(client: TestClient) -> None:
    """A link with a user name or password is refused (it would be published with the alert),
    naming which of the photos to correct (tests/unit/test_photo_urls.py: the rule)."""
    body = report_body()
    body["child"]["photo_urls"] = ["https://x.org/ok.jpg", "http://u:p@x.org/b.jpg"]
    error = refused(client, body)
    assert error["field"] == "child.photo_urls.1"
    assert error["details"][0]["code"] == "photo_url_credentials"
