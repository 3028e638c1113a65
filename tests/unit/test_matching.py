"""The matching rule of unidentified children against missing children (issue 16 item 4,
services/dispatch/matching.py): a table of kinds of pairs, and properties that hold for all."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.dispatch.matching import (
    AGE_TOLERANCE_Y,
    HEIGHT_TOLERANCE_CM,
    REACH_BASE_KM,
    REACH_KMH,
    FoundChild,
    MissingChild,
    growth_cm,
    score,
    words,
)
from shared.settings import Settings

SEEN = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
CHANGZHI = (36.19, 113.11)
THRESHOLD = Settings().match_min_score
KM_PER_DEG_LAT = 111.2

MISSING = MissingChild(sex="male", age=6, height_cm=115,
                       description="穿红色羽绒服，背蓝色书包，左眉有痣", last_seen_at=SEEN,
                       lat=CHANGZHI[0], lon=CHANGZHI[1])
# A hospital about 300 km due north, two hours later: the child of the issue's "Must show".
FOUND = FoundChild(sex="male", age_min=5, age_max=7, height_cm=117,
                   description="红色羽绒服，蓝色书包，左眉上方有一颗痣，哭闹找妈妈",
                   found_at=SEEN + timedelta(hours=2),
                   lat=CHANGZHI[0] + 300 / KM_PER_DEG_LAT, lon=CHANGZHI[1])


def north(km: float) -> float:
    return CHANGZHI[0] + km / KM_PER_DEG_LAT


@pytest.mark.parametrize(("case", "change", "offered", "excluded", "verdict"), [
    ("the issue's child: 300 km, 2 h later", {}, True, None, None),
    ("wrong sex", {"sex": "female"}, False, "sex", ("sex", "excluded")),
    ("sex unknown on the record", {"sex": "unknown"}, True, None, ("sex", "unknown")),
    ("40 cm taller", {"height_cm": 155}, False, "height", ("height", "excluded")),
    ("20 cm shorter", {"height_cm": 95}, False, "height", ("height", "excluded")),
    ("height near the tape's tolerance", {"height_cm": 110}, True, None, ("height", "partial")),
    ("no height measured", {"height_cm": None}, True, None, ("height", "unknown")),
    ("looks 12–14", {"age_min": 12, "age_max": 14}, False, "age", ("age", "excluded")),
    ("looks 8–9: within the estimate's tolerance", {"age_min": 8, "age_max": 9}, True, None,
     ("age", "partial")),
    ("found before the child went missing", {"found_at": SEEN - timedelta(hours=5)}, False,
     "time", ("time", "excluded")),
    ("1500 km away 1 h later: implausible, marked", {"lat": north(1500),
                                                     "found_at": SEEN + timedelta(hours=1)},
     True, None, ("place", "implausible")),
    ("same town a year later, grown 10 cm", {"found_at": SEEN + timedelta(days=365),
                                             "height_cm": 125, "age_min": 6, "age_max": 8,
                                             "lat": north(5)}, True, None, ("height", "match")),
    ("nothing in common but sex and age", {"description": "灰色毛衣，黑色运动鞋",
                                           "height_cm": None, "lat": north(2000),
                                           "found_at": SEEN + timedelta(hours=3)},
     False, None, ("description", "mismatch")),
])
def test_table(case: str, change: dict[str, object], offered: bool, excluded: str | None,
               verdict: tuple[str, str] | None) -> None:
    found = replace(FOUND, **change)  # type: ignore[arg-type]
    result = score(MISSING, found)
    assert result.offered(THRESHOLD) is offered, (case, result)
    assert result.excluded == excluded, case
    if verdict is not None:
        factor, expected = verdict
        assert [r.verdict for r in result.reasons if r.factor == factor] == [expected], case
    assert all(r.detail and r.detail_en for r in result.reasons), case


def test_the_issues_child_scores_high_with_every_reason_explained() -> None:
    result = score(MISSING, FOUND)
    assert result.score >= 0.85
    assert 295 <= result.distance_km <= 305 and result.hours_since == 2.0
    factors = {r.factor: r for r in result.reasons}
    assert set(factors) == {"sex", "age", "height", "description", "place"}
    assert "性别相符" in factors["sex"].detail
    assert "117 厘米" in factors["height"].detail
    assert {"红色", "蓝色", "书包", "羽绒"} <= set(result.shared_words)
    assert "可能到达" in factors["place"].detail
    assert result.score == round(sum(r.points for r in result.reasons), 2)


def test_words_are_character_pairs_and_latin_words_without_filler() -> None:
    assert words("红色外套") == {"红色", "色外", "外套"}
    assert words("穿着 Nike 鞋") >= {"nike"}
    assert "穿着" not in words("穿着红色外套")
    assert words("ＡＢＣ") == {"abc"}  # NFKC


@st.composite
def pairs(draw: st.DrawFn) -> tuple[MissingChild, FoundChild]:
    age = draw(st.integers(0, 16))
    missing = MissingChild(
        sex=draw(st.sampled_from(["male", "female", "unknown"])), age=age,
        height_cm=draw(st.none() | st.integers(50, 180)),
        description=draw(st.sampled_from(["", "红色外套蓝色书包", "黑色帽子", "white shoes"])),
        last_seen_at=SEEN, lat=CHANGZHI[0], lon=CHANGZHI[1])
    low = draw(st.integers(0, 17))
    found = FoundChild(
        sex=draw(st.sampled_from(["male", "female", "unknown"])), age_min=low,
        age_max=draw(st.integers(low, 17)), height_cm=draw(st.none() | st.integers(50, 200)),
        description=draw(st.sampled_from(["", "红色外套", "黑色帽子白色鞋", "white shoes"])),
        found_at=SEEN + timedelta(hours=draw(st.floats(-48, 24 * 800))),
        lat=CHANGZHI[0] + draw(st.floats(-15, 15)), lon=CHANGZHI[1])
    return missing, found


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_score_is_bounded_and_the_sum_of_its_reasons(pair: tuple[MissingChild, FoundChild]) -> None:
    result = score(*pair)
    assert 0 <= result.score <= 1
    assert result.score == round(min(1.0, sum(r.points for r in result.reasons)), 2)
    assert all(0 <= r.points <= r.weight + 1e-9 for r in result.reasons)


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_a_child_of_the_other_sex_is_never_offered(pair: tuple[MissingChild, FoundChild]) -> None:
    missing, found = pair
    other = {"male": "female", "female": "male"}
    if missing.sex in other:
        assert not score(missing, replace(found, sex=other[missing.sex])).offered(0.0)


@settings(max_examples=300, deadline=None)
@given(pairs(), st.floats(0.5, 60))
def test_a_child_taller_than_growth_allows_is_never_offered(
        pair: tuple[MissingChild, FoundChild], extra: float) -> None:
    missing, found = pair
    if missing.height_cm is None:
        return
    years = max(0.0, (found.found_at - missing.last_seen_at).days / 365.25)
    too_tall = missing.height_cm + HEIGHT_TOLERANCE_CM + growth_cm(missing.age, years) + extra
    assert not score(missing, replace(found, height_cm=int(too_tall) + 1)).offered(0.0)


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_an_apparent_age_far_from_the_age_then_is_never_offered(
        pair: tuple[MissingChild, FoundChild]) -> None:
    missing, found = pair
    years = max(0.0, (found.found_at - missing.last_seen_at).total_seconds() / 86400 / 365.25)
    oldest_then = missing.age + 1 + years
    low = int(oldest_then + AGE_TOLERANCE_Y) + 1
    if low <= 17:
        assert not score(missing, replace(found, age_min=low, age_max=17)).offered(0.0)


@settings(max_examples=200, deadline=None)
@given(pairs(), st.floats(1, 500))
def test_farther_away_never_scores_higher(pair: tuple[MissingChild, FoundChild],
                                          further_km: float) -> None:
    missing, found = pair
    base = abs(found.lat - missing.lat)
    farther = replace(found, lat=missing.lat + base + further_km / KM_PER_DEG_LAT)
    nearer = replace(found, lat=missing.lat + base)
    assert score(missing, farther).score <= score(missing, nearer).score


@settings(max_examples=200, deadline=None)
@given(pairs())
def test_within_reach_is_never_implausible(pair: tuple[MissingChild, FoundChild]) -> None:
    missing, found = pair
    hours = max(0.0, (found.found_at - missing.last_seen_at).total_seconds() / 3600)
    reach = REACH_BASE_KM + REACH_KMH * hours
    inside = replace(found, lat=missing.lat + 0.9 * reach / KM_PER_DEG_LAT / 1.01)
    place = [r for r in score(missing, inside).reasons if r.factor == "place"]
    assert place[0].verdict == "match"
