"""Property tests (hypothesis) of the report model and of every XML/SVG writer (issue 11 §5):
for any report the model accepts, its free text is NFC without control characters, and the CAP
message validates against the OASIS schema, the Atom feed and the spread SVG parse — and the
writers stay well-formed even for text stored unclean (older events, other producers)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.notify import domain, formats
from shared.idcard import IdNumberError, normalise_id_number
from shared.phones import PhoneError, parse_phone
from shared.report import STORED, ResolvedReport
from shared.text import clean_text, has_visible, xml_text
from tests.helpers import report_body

CAP_XSD = Path(__file__).parents[2] / "services/notify/schema/CAP-v1.2.xsd"
NOW = datetime.now(UTC).replace(microsecond=0)
FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@cache
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(CAP_XSD)


# Any code point, surrogates included, with the troublemakers of the issue mixed in.
NASTY = ["\x0b", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\ufffe",
         "\U0010ffff", "\u2028", "\r\n", "e\u0301", "&", "<", "]]>", '"', "'", "\t",
         "\u202e", "\u2066", "\u200f", "\u200b", "\ufeff", "\u00ad", "\u200d"]
# Invisible characters that reorder or split what a person reads (shared.text).
INVISIBLE = re.compile("[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064"
                       "\u2066-\u206f\ufeff\ufff9-\ufffb]")
any_piece = st.one_of(st.characters(exclude_categories=()), st.sampled_from(NASTY))


def any_text(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(any_piece, max_size=max_size).map(lambda p: "".join(p)[:max_size])


PHONES = ["139-0000-1111", "+86 139 0000 1111", "0355-202-1234", "010-8888 6666 转 801",
          "+852 9123 4567", "00853 6612 3456", "+886 912 345 678", "+1 415 555 2671"]


@st.composite
def report_bodies(draw: st.DrawFn) -> dict[str, Any]:
    offset = draw(st.integers(-12 * 60, 14 * 60))
    seen = NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
    at = seen.astimezone(timezone(timedelta(minutes=offset)))
    birth = draw(st.dates(date(2009, 1, 1), (NOW - timedelta(days=31)).date()))
    body = report_body(
        child__name=draw(any_text(50)), child__description=draw(any_text(1000)),
        child__birth_date=birth.isoformat(), last_seen__at=at.isoformat(),
        last_seen__address=draw(any_text(200)), circumstances__suspect=draw(any_text(500)),
        circumstances__vehicle=draw(any_text(100)), circumstances__notes=draw(any_text(300)),
        reporter__name=draw(any_text(50)), reporter__phone=draw(st.sampled_from(PHONES)),
        reporter__relation=draw(any_text(20)))
    if draw(st.booleans()):
        body["child"]["age"] = None
    return body


def alert_of(report: dict[str, Any], released: bool = True) -> domain.AlertState:
    """The alert notify keeps for an accepted report (as its handlers build it)."""
    sent = NOW
    seen = report["last_seen"]
    return domain.AlertState(
        alert_id="A-140403-20261122-ABCDEF", case_id="140403-20261122-ABCDEF",
        region_code=seen["region_code"], exercise=False, released=released,
        seen_at=datetime.fromisoformat(seen["at"]), lat=seen["lat"], lon=seen["lon"],
        radius_km=100.0, issued_at=sent, report=report,
        versions=[domain.VersionInfo(version=1, msg_type="Alert", sent=sent, radius_km=100.0)],
        leader={"name": "王局", "title": "局长", "phone": "0355-1234567"})


def assert_writers_well_formed(alert: domain.AlertState, hub_names: list[str]) -> None:
    for scope in ("Public", "Restricted"):
        s: Literal["Public", "Restricted"] = scope  # type: ignore[assignment]
        cap_schema().validate(formats.cap_xml(alert, 1, s, "s@x.cn", "https://n", "110", 1000)
                              .decode())
    ET.fromstring(formats.atom_feed([alert], "https://n", "110", 1000))
    hubs = [(name, alert.lat + 0.1 * i, alert.lon, "pushed") for i, name in enumerate(hub_names)]
    ET.fromstring(formats.spread_svg(alert.case_id, alert.lat, alert.lon, 100.0,
                                     [100.0, 200.0], hubs))
    alert.bump("Update", NOW + timedelta(hours=1))
    cap_schema().validate(formats.cap_xml(alert, 2, "Public", "s@x.cn", "https://n", "110", 1000)
                          .decode())


@PROPERTY
@given(report_bodies(), st.lists(any_text(40), max_size=3))
def test_any_accepted_report_is_clean_and_every_writer_stays_well_formed(
    body: dict[str, Any], hub_names: list[str]
) -> None:
    try:
        report = ResolvedReport.model_validate(body)
    except ValidationError as e:  # only for what a person must correct, e.g. an empty name
        assert all(err["type"] == "string_too_short" or "no visible character" in err["msg"]
                   for err in e.errors()), e.errors()
        return
    texts = [report.child.name, report.child.description, report.last_seen.address,
             report.circumstances.suspect, report.circumstances.vehicle,
             report.circumstances.notes, report.reporter.name, report.reporter.relation]
    for text in texts:
        assert not FORBIDDEN.search(text) and not INVISIBLE.search(text), repr(text)
        assert unicodedata.is_normalized("NFC", text)
    assert report.reporter.phone.startswith("+")
    assert_writers_well_formed(alert_of(report.model_dump(mode="json")), hub_names)


@PROPERTY
@given(report_bodies(), st.lists(any_text(40), max_size=3))
def test_writers_stay_well_formed_whatever_is_stored(
    body: dict[str, Any], hub_names: list[str]
) -> None:
    """The report as stored, never cleaned (an event from before the cleaning existed)."""
    assert_writers_well_formed(alert_of(body), hub_names)


@given(any_text(200))
def test_cleaning_is_idempotent_and_leaves_only_xml_characters(text: str) -> None:
    once = clean_text(text)
    assert isinstance(once, str) and clean_text(once) == once
    assert xml_text(once) == once and not FORBIDDEN.search(once)
    assert not INVISIBLE.search(once) and not INVISIBLE.search(xml_text(text))


# One pasted character: an unclosed RIGHT-TO-LEFT OVERRIDE after the name shows the rest of the
# message reversed (the contact number, the check code, the link); a zero-width space inside a
# plate hides it from a search. The joiners emoji and some scripts need, and the Mongolian
# vowel separator, stay.
@pytest.mark.parametrize(("pasted", "kept"), [
    ("张小明\u202e，男7岁", "张小明，男7岁"),
    ("\u2067王芳\u2069", "王芳"),
    ("\u202a李\u202c雷", "李雷"),
    ("晋D·1\u200b2345", "晋D·12345"),
    ("\ufeff阿依古丽", "阿依古丽"),
    ("红色\u00ad外套", "红色外套"),
    ("穿\u200e蓝衣\u200f", "穿蓝衣"),
    ("\u061c阿卜杜", "阿卜杜"),
    ("👨\u200d👩\u200d👧 图案", "👨\u200d👩\u200d👧 图案"),
    ("ᠮᠣ\u180eᠩ", "ᠮᠣ\u180eᠩ"),
    ("\U0001f3f4\U000e0067\U000e0062\U000e007f", "\U0001f3f4\U000e0067\U000e0062\U000e007f"),
])
def test_invisible_direction_and_format_characters_are_removed(pasted: str, kept: str) -> None:
    assert clean_text(pasted) == kept
    assert xml_text(pasted) == kept  # a value stored before the cleaning existed, on output


# A one-line field that shows nothing is refused, naming the field: a child's name of
# U+3164 HANGUL FILLER would publish "儿童失踪协查：" with no name.
SHOW_NOTHING = ["\u3164", "\u115f", "\uffa0", "\u2800", "\u200d", "\u200c", "\U000e0020",
                "\ufe0f", "\u034f", "\u180e", "\u180b", "\u0301", "   ", "\u3000", "\t",
                "\u200d\u3164 \ufe0f"]


@pytest.mark.parametrize("name", SHOW_NOTHING)
@pytest.mark.parametrize("field", ["child__name", "reporter__name"])
def test_a_name_that_shows_nothing_is_refused_naming_the_field(name: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ResolvedReport.model_validate(report_body(**{field: name}))
    [error] = refused.value.errors()
    assert error["loc"] == tuple(field.split("__")) and "no visible character" in error["msg"]


@pytest.mark.parametrize("name", [n for n in SHOW_NOTHING if n.strip()])
def test_a_stored_report_is_never_refused_by_the_visibility_rule(name: str) -> None:
    """A report accepted before the rule, read back from the log (context stored), stays
    readable: nothing accepted is lost to a consumer's DLQ. (Spaces alone were refused before
    the rule too.)"""
    body = report_body(child__name=name, reporter__name=name, reporter__relation=name)
    assert ResolvedReport.model_validate(body, context=STORED).child.name


@given(st.lists(st.sampled_from(SHOW_NOTHING), max_size=4).map("".join),
       st.sampled_from(["张", "a", "·x", "😀"]))
def test_a_name_with_one_visible_character_is_kept(blank: str, visible: str) -> None:
    report = ResolvedReport.model_validate(report_body(child__name=blank + visible + blank))
    assert has_visible(report.child.name)  # kept (NFC may join a mark to it: a + U+0301)


# The same rule for text that may run over lines, wherever it is typed: a public tip, a report's
# description, an unidentified child's circumstances, a reason for a case's timeline, an
# amendment. White space alone is the model's: stripped (an optional field empty, a required
# one too short).
def _text_models() -> list[tuple[str, Any, dict[str, Any], tuple[str, ...]]]:
    from services.dispatch.api import CloseRequest
    from shared.amendment import DetailsAmendment
    from shared.report import TipRequest
    from shared.unidentified import UnidentifiedChildRequest

    tip = {"case_id": "140403-20261130-A1B2C3", "seen_at": NOW.isoformat(),
           "location": {"lat": 36.19, "lon": 113.11}, "description": "x"}
    found = {"sex": "male", "apparent_age": {"min": 3, "max": 5},
             "found": {"at": NOW.isoformat(), "region_code": "140403"}, "circumstances": "x"}
    return [
        ("tip", TipRequest, tip, ("description",)),
        ("tip address", TipRequest, {**tip, "location": {**tip["location"], "address": "x"}},
         ("location", "address")),
        ("unidentified", UnidentifiedChildRequest, found, ("circumstances",)),
        ("close reason", CloseRequest, {"reason": "x"}, ("reason",)),
        ("amendment", DetailsAmendment, {"description": "x"}, ("description",)),
    ]


def _with(body: dict[str, Any], path: tuple[str, ...], value: str) -> dict[str, Any]:
    if len(path) == 1:
        return {**body, path[0]: value}
    return {**body, path[0]: _with(body[path[0]], path[1:], value)}


@pytest.mark.parametrize("blank", [n for n in SHOW_NOTHING if n.strip()])
@pytest.mark.parametrize(("kind", "model", "body", "path"), _text_models(),
                         ids=[m[0] for m in _text_models()])
def test_free_text_that_shows_nothing_is_refused_naming_the_field(
    kind: str, model: Any, body: dict[str, Any], path: tuple[str, ...], blank: str,
) -> None:
    assert model.model_validate(body)  # the body is valid with a visible value
    with pytest.raises(ValidationError) as refused:
        model.model_validate(_with(body, path, blank + "\n" + blank))
    [error] = refused.value.errors()
    assert error["loc"] == path and "no visible character" in error["msg"], error
    kept = model.model_validate(_with(body, path, blank + "看见了\n" + blank))
    assert kept  # one visible character is enough
    assert model.model_validate(_with(body, path, blank), context=STORED)  # stored: never


@pytest.mark.parametrize("field", ["child__description", "circumstances__notes",
                                   "circumstances__suspect", "last_seen__address"])
def test_a_report_text_that_shows_nothing_is_refused_and_white_space_is_empty(
    field: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        ResolvedReport.model_validate(report_body(**{field: "\u3164\n\u200d"}))
    assert any(e["loc"] == tuple(field.split("__")) for e in refused.value.errors())
    if field != "last_seen__address":  # the address places the child: blank is another error
        report = ResolvedReport.model_validate(report_body(**{field: " \n\u3000 "}))
        part, name = field.split("__")
        assert getattr(getattr(report, part), name) == ""


# --- ID numbers: GB 11643-1999, ISO 7064 MOD 11-2 --------------------------------------------

def check_char(first17: str) -> str:
    """GB 11643-1999 §5.2 written out: weights 2^(17-i) mod 11, check = (12 - sum mod 11) mod
    11, 10 written X — an independent computation to test the library's against."""
    total = sum(int(d) * pow(2, 17 - i, 11) for i, d in enumerate(first17))
    value = (12 - total % 11) % 11
    return "X" if value == 10 else str(value)


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    place = draw(st.sampled_from(["140403", "110101", "500157", "810000", "652701"]))
    born = draw(st.dates(date(1950, 1, 1), date(2025, 12, 31)))
    first17 = f"{place}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + check_char(first17)


FULL_WIDTH = str.maketrans("0123456789X", "０１２３４５６７８９ｘ")


@given(id_numbers(), st.sampled_from(["plain", "lower", "full", "spaced"]))
def test_every_valid_id_number_is_accepted_in_any_typing(number: str, typing: str) -> None:
    typed = {"plain": number, "lower": number.lower(), "full": number.translate(FULL_WIDTH),
             "spaced": f"{number[:6]} {number[6:14]} {number[14:]}"}[typing]
    assert normalise_id_number(typed) == number


@given(id_numbers(), st.integers(0, 17), st.integers(1, 10))
def test_any_single_mistyped_character_is_refused(number: str, where: int, by: int) -> None:
    chars = "0123456789X" if where == 17 else "0123456789"
    wrong = chars[(chars.index(number[where]) + by) % len(chars)]
    if wrong == number[where]:
        return
    typed = number[:where] + wrong + number[where + 1:]
    try:
        normalise_id_number(typed)
    except IdNumberError as e:
        assert e.code in {"id_checksum", "id_birth_date", "id_format"}
    else:
        raise AssertionError(f"{typed} accepted")


@given(st.sampled_from(PHONES))
def test_the_normal_form_of_a_phone_reads_back_as_itself(raw: str) -> None:
    phone = parse_phone(raw)
    assert parse_phone(phone.e164).e164 == phone.e164
    again = parse_phone(phone.display)
    assert (again.e164, again.extension) == (phone.e164, phone.extension)


@given(any_text(60))
def test_any_text_is_a_phone_or_a_phone_error_never_a_crash(text: str) -> None:
    try:
        phone = parse_phone(text)
    except PhoneError:
        return
    assert phone.e164.startswith("+") and phone.e164[1:].isdigit()


@given(st.one_of(any_text(30), st.text("0123456789Xx٠١٢٣٤٥٦٧٨٩０１２３４５６７８９ －", min_size=15,
                                        max_size=22)))
def test_any_text_is_an_id_number_or_an_id_error_never_a_crash(text: str) -> None:
    try:
        number = normalise_id_number(text)
    except IdNumberError:
        return
    assert re.fullmatch("[0-9]{17}[0-9X]", number)


# A region code is six ASCII digits. Full-width ones, as a Chinese input method types them, are
# those digits; any other script's digits (which `\d` would have let through, to be refused
# later as an unknown region) are refused by the pattern, naming the field.
@pytest.mark.parametrize(("given", "kept"), [
    ("140403", "140403"), ("１４０４０３", "140403"), ("14０4０3", "140403"),
    ("١٤٠٤٠٣", None), ("१४०४०३", None), ("𝟏𝟒𝟎𝟒𝟎𝟑", None), ("①④⓪④⓪③", None), (" 14040３ ", "140403"),
])
def test_a_region_code_is_six_ascii_digits(given: str, kept: str | None) -> None:
    body = report_body(last_seen__region_code=given)
    if kept is None:
        with pytest.raises(ValidationError) as refused:
            ResolvedReport.model_validate(body)
        assert [e["loc"] for e in refused.value.errors()] == [("last_seen", "region_code")]
    else:
        assert ResolvedReport.model_validate(body).last_seen.region_code == kept
