"""Shortening text for a channel's limit (shared.text.cut, cut_bytes) and the pushes built
with it (services.notify.content.summary_text, tip_push.tip_body): whole user-perceived
characters only (UAX #29 extended grapheme clusters), and what a reader must act on — where,
whom to call, what to do — is never what gives way."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify.content import summary_text
from services.notify.tip_push import tip_body
from shared.text import cut, cut_bytes

CLUSTERS = ["张", "a", "🇨🇳", "👨\u200d👩\u200d👧", "👍🏽", "བསྒྲུབས", "e\u0301", "ᠮᠣ\u180eᠩ",
            "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "。"]


def clusters(text: str) -> list[str]:
    return regex.findall(r"\X", text)


@pytest.mark.parametrize(("text", "limit", "out"), [
    ("abc", 3, "abc"), ("abcd", 3, "ab…"), ("🇨🇳🇨🇳🇨🇳", 4, "🇨🇳…"),
    ("ab👨\u200d👩\u200d👧", 5, "ab…"), ("👍🏽👍🏽", 3, "👍🏽…"), ("x", 0, "x"[:0]),
    ("看见一个孩子", 1, "…"), ("", 0, ""),
])
def test_cut_table(text: str, limit: int, out: str) -> None:
    assert cut(text, limit) == out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CLUSTERS), max_size=60).map("".join),
       st.integers(min_value=0, max_value=80))
def test_cut_keeps_whole_characters_within_the_limit(text: str, limit: int) -> None:
    out = cut(text, limit)
    assert len(out) <= limit
    if len(text) <= limit:
        assert out == text
    elif out:
        kept = out[:-1]
        assert out.endswith("…") and text.startswith(kept)
        assert clusters(text)[:len(clusters(kept))] == clusters(kept)  # a cluster boundary
        assert len(kept) + len(clusters(text)[len(clusters(kept))]) > limit - 1  # as much as fits


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(CLUSTERS), max_size=60).map("".join),
       st.integers(min_value=0, max_value=200))
def test_cut_bytes_keeps_whole_characters_within_the_bytes(text: str, max_bytes: int) -> None:
    out = cut_bytes(text, max_bytes)
    assert len(out.encode()) <= max_bytes
    kept = out.removesuffix("…") if out != text else out
    assert text.startswith(kept)
    assert clusters(text)[:len(clusters(kept))] == clusters(kept)


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SEEN = {"at": "2026-11-30T09:00:00+08:00", "address": "山西省长治市潞州区英雄中路太行公园"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(CLUSTERS), max_size=1000).map("".join),
       st.sampled_from([300, 500, 1000]))
def test_a_long_description_gives_way_not_the_place_or_the_contact(
        words: str, limit: int) -> None:
    child = {"name": "张小明", "sex": "male", "age": 7, "height_cm": 120, "description": words}
    text = summary_text(child, SEEN, 100.0, "0355-1234567", "https://n/a.xml", limit,
                        code="K7Q2M9", verify_base="https://v.example.cn")
    assert len(text) <= limit
    assert "最后出现：山西省长治市潞州区英雄中路太行公园" in text
    assert "如有线索请联系0355-1234567。" in text and text.endswith(" 详见：https://n/a.xml")
    start = text.index("cm。") + 3
    shown = text[start:text.index("最后出现：")]
    assert clusters(words)[:len(clusters(shown.rstrip("…。")))] == clusters(shown.rstrip("…。"))


@pytest.mark.parametrize(("words", "shown"), [
    ("穿红色外套", "穿红色外套。最后出现："), ("穿红色外套。", "穿红色外套。最后出现："),
    ("穿红色外套！", "穿红色外套！最后出现："), ("", "cm。最后出现："),
])
def test_the_description_ends_as_a_sentence(words: str, shown: str) -> None:
    child = {"name": "张小明", "sex": "male", "age": 7, "height_cm": 120, "description": words}
    assert shown in summary_text(child, SEEN, 100.0, "110", "https://n/a.xml", 1000)


@pytest.mark.parametrize("limit", [120, 200, 1000])
@pytest.mark.parametrize("words", ["看见一个孩子" + "🇨🇳" * 995, "穿红衣服" * 500])
def test_a_long_tip_keeps_what_to_do(words: str, limit: int) -> None:
    details = {"tip": {"tip_id": "T1", "seen_at": "2026-11-30T09:00:00+08:00",
                       "location": {"lat": 37.87, "lon": 112.55, "address": "太原站"},
                       "description": words[:2000], "source": "public"}}
    text = tip_body("140403-20261130-A1B2C3", details, limit, "Asia/Shanghai")["text"]
    assert len(text) <= limit and text.endswith("请在指挥台研判。"), text[-20:]
    assert "…" in text and "\U0001f1e8 " not in text  # no half flag before the ask


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(CLUSTERS), max_size=1000).map("".join),
       st.lists(st.sampled_from(CLUSTERS), max_size=500).map("".join),
       st.sampled_from([500, 1000]))
def test_suspect_words_give_way_too_never_the_radius_or_the_contact(
        words: str, suspect: str, limit: int) -> None:
    child = {"name": "阿卜杜热合曼·买买提依明·艾合买提江", "sex": "male", "age": 7,
             "height_cm": 120, "description": words}
    text = summary_text(child, SEEN, 100.0, "张队 0355-1234567", "https://n/a.xml", limit,
                        extra=f"嫌疑人：{suspect}。车辆：晋D·12345。", code="K7Q2M9",
                        verify_base="https://v.example.cn")
    assert len(text) <= limit
    assert "范围100公里。如有线索请联系张队 0355-1234567。" in text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(CLUSTERS), max_size=1000).map("".join),
       st.lists(st.sampled_from(CLUSTERS), max_size=500).map("".join))
def test_a_chat_channel_counting_bytes_keeps_the_radius_and_the_contact(
        words: str, suspect: str) -> None:
    from services.notify.content import fit_bytes

    child = {"name": "张小明", "sex": "male", "age": 7, "height_cm": 120, "description": words}
    text = summary_text(child, SEEN, 100.0, "0355-1234567", "https://n/a.xml", 1000,
                        extra=f"嫌疑人：{suspect}。", code="K7Q2M9",
                        verify_base="https://v.example.cn")
    fitted = fit_bytes(text, 2048 - 40)
    assert len(fitted.encode()) <= 2048 - 40
    assert "范围100公里。如有线索请联系0355-1234567。" in fitted
    assert fitted.endswith(" 详见：https://n/a.xml") and "核验码：K7Q2M-9" in fitted
