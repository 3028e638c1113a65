"""Development zones and new areas in address text: 高新区, 经开区, 新区, 保税区, 工业园区 …

They are not administrative divisions (a few 新区 are: 浦东新区, 滨海新区, 两江新区 — those are
ordinary regions), so a zone never names a county by itself. What is known of a zone comes
from data (shared/data/regions.json `zones`: 国家统计局 统计用区划代码 rows for zones, and the
国家级新区 with their host prefectures, see shared/data/README.md); the rest of an address
(the city that names the zone, a county, coordinates) must place the child, or the report is
refused asking for the county.

Pure text helpers; `shared.regions.RegionIndex` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Long official forms folded to the short ones people write, so that both match one key.
_FOLD = (
    ("高新技术产业开发区", "高新区"), ("高新技术产业园区", "高新区"),
    ("高技术产业开发区", "高新区"), ("高新技术开发区", "高新区"), ("经济技术开发区", "经开区"),
    # after the 高新… forms: 武汉东湖新技术开发区 is the official name of 东湖高新区
    ("新技术产业开发区", "高新区"), ("新技术开发区", "高新区"),
)
# Zone kinds, longest first (after folding). "新城" and "园区" are left out: 新城区 and
# 公园区-like words are common in real division and street names.
KINDS = (
    "自由贸易试验区", "综合改革示范区", "城乡一体化示范区", "现代产业园区", "经济开发区",
    "综合保税区", "保税港区", "工业园区", "产业园区", "科技园区", "高新区", "经开区", "开发区",
    "保税区", "自贸区", "示范区", "试验区", "实验区", "管理区", "合作区", "新区",
)
_KIND_RE = re.compile("|".join(re.escape(k) for k in KINDS))


def fold(text: str) -> str:
    """Whitespace removed, long zone kinds folded (经济技术开发区 -> 经开区)."""
    text = "".join(text.split())
    for long, short in _FOLD:
        text = text.replace(long, short)
    return text


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int

    def overlaps(self, start: int, end: int) -> bool:
        return start < self.end and self.start < end

    def within(self, start: int, end: int) -> bool:
        return start <= self.start and self.end <= end


def kind_spans(folded: str) -> list[Span]:
    """Where a zone kind word stands in folded text (leftmost-longest, non-overlapping)."""
    return [Span(m.start(), m.end()) for m in _KIND_RE.finditer(folded)]


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone from data: its name as published and the division(s) hosting it."""

    name: str
    hosts: tuple[str, ...]
    source: str


def zone_keys(name: str, province_names: Iterable[str]) -> set[str]:
    """The spellings of a zone name that may appear in an address: the folded name, without a
    leading province name (河北唐山芦台经济开发区 -> 唐山芦台经济开发区), and without the 市
    after its city (秦皇岛市经开区 -> 秦皇岛经开区); never a spelling of kind words alone
    (吉林经济开发区 keeps its 吉林: 吉林 is a city's name as well as the province's)."""
    folded = fold(name)
    keys = {folded}
    for p in province_names:
        if folded.startswith(p) and len(folded) - len(p) >= 4:
            keys.add(folded[len(p):])
    for k in list(keys):
        i = k.find("市")
        if 2 <= i <= 4 and len(k) - i > 3:
            keys.add(k[:i] + k[i + 1:])
    # A key must keep a name of its own besides the kind words: 吉林经济开发区 without the
    # province's name 吉林 would be the bare 经济开发区, read in every address that names one.
    return {k for k in keys if _KIND_RE.search(k) and len(_KIND_RE.sub("", k)) >= 2}
