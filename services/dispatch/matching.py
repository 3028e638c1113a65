"""Whether an unidentified child (来历不明儿童) may be a missing child of an open case: a pure,
explained rule (issue 16 item 4). The same function serves both ways — a new record against
open cases, a new report against recent records.

Sources: 002 §三㈢ ("对来历不明儿童进行登记、报告、关注", compared against the missing: "全部入库
比对"), 004 (2): "建立来历不明儿童信息收集和交流机制，及时发现来历不明、疑似被拐卖的儿童".

The rule, factor by factor (each gives points out of its weight and a reason):

* sex (0.15) — both known and different: excluded. Unknown on either side: half the points.
* time — a child found more than FOUND_BEFORE_TOLERANCE before they went missing is not them:
  excluded.
* age (0.30) — the missing child's age then is `age` completed years at the last sighting plus
  the time since, i.e. the interval [age + t, age + 1 + t). Overlapping the apparent range:
  full points; within AGE_TOLERANCE_Y years of it (apparent ages are estimates): half, less
  with the gap; farther: excluded.
* height (0.20) — both known: the child can be no shorter than HEIGHT_TOLERANCE_CM below the
  height reported, and no taller than that tolerance plus the most a child grows in the time
  since (growth_cm); outside: excluded; inside: the closer to the expected height, the more
  points. Unknown on either side: half the points.
* description (0.20) — the words both descriptions share (Chinese text in character pairs,
  other text in words, shared.text-normalised): points by the share of the shorter
  description's words found in the other; the words are named in the reason.
* place and time (0.15) — distance between last-seen and found place against how far the child
  can have been taken in the time between (REACH_BASE_KM plus REACH_KMH, high-speed rail);
  beyond it: implausible (no points, marked, not excluded: times and places are often rough);
  within: points falling from 1 to 0.5 as the distance nears the reach.

A candidate is offered when not excluded and its score (0..1, two decimals) is at least the
threshold (settings: match_min_score).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from shared.regions import RegionIndex

Factor = Literal["sex", "time", "age", "height", "description", "place"]
WEIGHTS: dict[Factor, float] = {"sex": 0.15, "age": 0.30, "height": 0.20, "description": 0.20,
                                "place": 0.15}
FOUND_BEFORE_TOLERANCE = timedelta(hours=1)  # clocks and "about 3 pm" reports
AGE_TOLERANCE_Y = 2.0  # an apparent age is an estimate: this far outside the range, half points
HEIGHT_TOLERANCE_CM = 6.0  # a parent's figure and a nurse's tape differ by this much
REACH_BASE_KM = 10.0  # on foot or by bicycle, whatever the time
REACH_KMH = 300.0  # high-speed rail (高铁): the fastest a child is taken on the ground
YEAR_DAYS = 365.25


def growth_cm(age_years: float, years: float) -> float:
    """The most a child of `age_years` grows in `years` (cm): 25 cm a year under 2, 12 cm a
    year after (above the fastest growth of the WHO/中国 0–18 岁儿童生长参照 P97 curves, so a
    real child is never excluded by it)."""
    if years <= 0:
        return 0.0
    infant = max(0.0, min(years, 2.0 - age_years))
    return 25.0 * infant + 12.0 * (years - infant)


@dataclass(frozen=True)
class MissingChild:
    """The case side: the child as reported missing."""

    sex: str  # male | female | unknown
    age: int  # completed years at the last sighting
    height_cm: int | None
    description: str
    last_seen_at: datetime
    lat: float
    lon: float


@dataclass(frozen=True)
class FoundChild:
    """The record side: a child met or found without a guardian."""

    sex: str
    age_min: int
    age_max: int
    height_cm: int | None
    description: str
    found_at: datetime
    lat: float
    lon: float


class Reason(BaseModel):
    """One factor's verdict, shown to the commander with the candidate."""

    factor: Factor
    points: float = Field(description="points given, out of `weight`")
    weight: float
    verdict: Literal["match", "partial", "unknown", "mismatch", "implausible", "excluded"]
    detail: str = Field(description="the reason in Chinese, with the figures")
    detail_en: str = ""


class Score(BaseModel):
    """The rule's answer: `excluded` names the factor that rules the pair out."""

    score: float = Field(ge=0, le=1)
    excluded: Factor | None = None
    reasons: list[Reason]
    distance_km: float
    hours_since: float = Field(description="from the last sighting to the found time, hours")
    shared_words: list[str] = Field(default_factory=list)

    def offered(self, threshold: float) -> bool:
        return self.excluded is None and self.score >= threshold


@dataclass
class _Tally:
    reasons: list[Reason] = field(default_factory=list)
    excluded: Factor | None = None

    def add(self, factor: Factor, share: float, verdict: str, zh: str, en: str) -> None:
        weight = WEIGHTS.get(factor, 0.0)
        self.reasons.append(Reason(factor=factor, points=round(weight * share, 3), weight=weight,
                                   verdict=verdict, detail=zh, detail_en=en))  # type: ignore[arg-type]
        if verdict == "excluded" and self.excluded is None:
            self.excluded = factor


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[0-9a-z]{2,}")
# Pairs that say nothing about a child (filler in descriptions).
_STOP = frozenset({"一个", "一名", "穿着", "左右", "大约", "身穿", "上身", "下身", "孩子", "儿童",
                   "男孩", "女孩", "发现", "看到", "没有"})


def words(text: str) -> set[str]:
    """The comparable words of a description: NFKC, case-folded; runs of Chinese characters as
    overlapping character pairs (红色外套 → 红色, 色外, 外套), other text as words of two or more
    letters or digits; filler pairs dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    out: set[str] = set()
    for run in _CJK.findall(folded):
        out |= {run[i:i + 2] for i in range(len(run) - 1)}
    out |= set(_WORD.findall(_CJK.sub(" ", folded)))
    return out - _STOP


def score(missing: MissingChild, found: FoundChild) -> Score:
    """Score `found` as `missing` (rule and weights in the module docstring)."""
    tally = _Tally()
    elapsed = found.found_at - missing.last_seen_at
    years = max(0.0, elapsed.total_seconds() / 86400 / YEAR_DAYS)
    hours = elapsed.total_seconds() / 3600
    km = RegionIndex.distance_km(missing.lat, missing.lon, found.lat, found.lon)
    _sex(tally, missing.sex, found.sex)
    if elapsed < -FOUND_BEFORE_TOLERANCE:
        tally.add("time", 0, "excluded", f"登记的发现时间早于失踪时间 {-hours:.1f} 小时",
                  f"found {-hours:.1f} h before the child went missing")
    _age(tally, missing.age, years, found.age_min, found.age_max)
    _height(tally, missing.height_cm, missing.age, years, found.height_cm)
    shared = _description(tally, missing.description, found.description)
    _place(tally, km, max(hours, 0.0))
    total = round(min(1.0, sum(r.points for r in tally.reasons)), 2)
    return Score(score=total, excluded=tally.excluded, reasons=tally.reasons,
                 distance_km=round(km, 1), hours_since=round(hours, 2), shared_words=shared)


def _sex(tally: _Tally, missing: str, found: str) -> None:
    names = {"male": "男", "female": "女", "unknown": "不详"}
    if "unknown" in (missing, found):
        tally.add("sex", 0.5, "unknown", f"性别一方不详（{names[missing]} / {names[found]}）",
                  f"sex unknown on one side ({missing} / {found})")
    elif missing == found:
        tally.add("sex", 1, "match", f"性别相符（{names[found]}）", f"same sex ({found})")
    else:
        tally.add("sex", 0, "excluded", f"性别不符（失踪{names[missing]}，登记{names[found]}）",
                  f"sex differs (missing {missing}, found {found})")


def _age(tally: _Tally, age: int, years: float, low: int, high: int) -> None:
    now_low, now_high = age + years, age + 1 + years  # the child's possible age now
    gap = max(0.0, low - now_high, now_low - (high + 1))
    span = f"{now_low:.1f}–{now_high:.1f}"
    if gap == 0:
        tally.add("age", 1, "match",
                  f"失踪时 {age} 岁，现应 {span} 岁，与表面年龄 {low}–{high} 岁相符",
                  f"{age} when missing, {span} now: within the apparent {low}–{high}")
    elif gap <= AGE_TOLERANCE_Y:
        tally.add("age", 0.5 * (1 - gap / AGE_TOLERANCE_Y) + 0.1, "partial",
                  f"现应 {span} 岁，与表面年龄 {low}–{high} 岁相差 {gap:.1f} 岁",
                  f"{span} now, {gap:.1f} years off the apparent {low}–{high}")
    else:
        tally.add("age", 0, "excluded",
                  f"现应 {span} 岁，与表面年龄 {low}–{high} 岁相差 {gap:.1f} 岁",
                  f"{span} now, {gap:.1f} years off the apparent {low}–{high}")


def _height(tally: _Tally, reported: int | None, age: int, years: float,
            measured: int | None) -> None:
    if reported is None or measured is None:
        tally.add("height", 0.5, "unknown", "一方未登记身高", "height not given on one side")
        return
    grown = growth_cm(age, years)
    low, high = reported - HEIGHT_TOLERANCE_CM, reported + HEIGHT_TOLERANCE_CM + grown
    window = f"{low:.0f}–{high:.0f} 厘米"
    if not low <= measured <= high:
        tally.add("height", 0, "excluded",
                  f"身高 {measured} 厘米不在可能范围 {window}（失踪时 {reported} 厘米）",
                  f"height {measured} cm outside {low:.0f}–{high:.0f} cm "
                  f"(reported {reported} cm)")
        return
    expected = reported + grown / 2
    off = abs(measured - expected) / max(high - expected, expected - low)
    tally.add("height", 1 - 0.5 * off, "match" if off <= 0.5 else "partial",
              f"身高 {measured} 厘米在可能范围 {window}（失踪时 {reported} 厘米）",
              f"height {measured} cm within {low:.0f}–{high:.0f} cm (reported {reported} cm)")


def _description(tally: _Tally, missing: str, found: str) -> list[str]:
    a, b = words(missing), words(found)
    if not a or not b:
        tally.add("description", 0, "unknown", "一方无体貌描述", "no description on one side")
        return []
    shared = sorted(a & b)
    share = len(shared) / min(len(a), len(b))
    shown = "、".join(shared[:8])
    if not shared:
        tally.add("description", 0, "mismatch", "体貌描述无共同词", "descriptions share no words")
    else:
        tally.add("description", share, "match" if share >= 0.5 else "partial",
                  f"体貌描述共同词 {len(shared)} 个：{shown}",
                  f"descriptions share {len(shared)} words: {', '.join(shared[:8])}")
    return shared


def _place(tally: _Tally, km: float, hours: float) -> None:
    reach = REACH_BASE_KM + REACH_KMH * hours
    if km > reach:
        tally.add("place", 0, "implausible",
                  f"距失踪地 {km:.0f} 公里、相隔 {hours:.1f} 小时：超出可能到达的 {reach:.0f} 公里",
                  f"{km:.0f} km from the last sighting {hours:.1f} h later: beyond the "
                  f"{reach:.0f} km reachable")
        return
    tally.add("place", 1 - 0.5 * km / reach, "match",
              f"距失踪地 {km:.0f} 公里、相隔 {hours:.1f} 小时：可能到达（{reach:.0f} 公里内）",
              f"{km:.0f} km from the last sighting {hours:.1f} h later: reachable "
              f"(within {reach:.0f} km)")
