"""How the region names found in an address are weighed against each other (used by
shared.region_address.AddressParser): each name's own weight plus the best non-overlapping
weights of its ancestors named, generic district names only right under their parent, a
county contradicted by a larger region named right before it, ties settled by their common
ancestor, and a development zone's hosts against the rest of the address."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.region_codes import within
from shared.region_towns import OUTSIDE_MAINLAND
from shared.zones import Zone

if TYPE_CHECKING:
    from shared.regions import Region

__all__ = ["ADJACENT", "Hit", "Scorer"]

# Between a larger region's name and a county's name right after it: nothing, or separators
# (the 市 of "台北市大安区" when the name found is 台北).
ADJACENT = re.compile(r"[省市]?[\s,，、·]*")


@dataclass(frozen=True, slots=True)
class Hit:
    """A region's name found at text[start:end]: its weight (length plus 1 for a full
    official name, 0.5 for a former one), whether it is a generic district name, whether
    full."""

    start: int
    end: int
    weight: float
    generic: bool = False
    full: bool = False


class Scorer:
    """Weighs the hits of an address (code -> its names found) over `regions` (by code);
    `chain(code)` is the region then its ancestors (RegionIndex.chain)."""

    def __init__(self, regions: Mapping[str, Region],
                 chain: Callable[[str], list[Region]]) -> None:
        self._by_code = regions
        self._chain = chain

    def best(self, hits: dict[str, list[Hit]], text: str, inside: str | None = None,
              generic: list[str] | None = None) -> tuple[Region | None, tuple[str, ...]]:
        """The region the hits name best, or None and the candidates; a generic name that
        does not count goes to `generic`."""
        scored: list[tuple[float, Region]] = []
        for code, own in hits.items():
            chain = self._chain(code)
            best = -math.inf
            for own_hit in own:
                ancestors = self._ancestors_score(chain[1:], hits, [own_hit])
                parent = chain[1].code if len(chain) > 1 else ""
                if own_hit.generic and not any(
                        h.end <= own_hit.start and ADJACENT.fullmatch(text, h.end, own_hit.start)
                        for h in hits.get(parent, ())) \
                        and not (parent and inside is not None and within(parent, inside)):
                    if generic is not None:
                        generic.append(code)
                    continue  # a generic name counts right under its own parent's name only
                    # (阳泉城区, 攀枝花市 东区; not 家住阳泉，在佛山城区), or under the region
                    # code given with it (140500 + 城区)
                best = max(best, own_hit.weight + ancestors)
            if best > -math.inf:
                scored.append((best, chain[0]))
        if not scored:
            return None, ()
        top = max(s for s, _ in scored)
        best_regions = [r for s, r in scored if s == top]
        if len(best_regions) == 1:
            contradicted = self._contradicted(best_regions[0], hits, text)
            if contradicted is not None:
                return None, tuple(sorted((best_regions[0].code, contradicted.code)))
            return best_regions[0], ()
        common = self._common_ancestor(best_regions)
        return common, () if common else tuple(sorted(r.code for r in best_regions))

    def within_zone(self, region: Region | None,
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

    def _ancestors_score(self, ancestors: list[Region], hits: dict[str, list[Hit]],
                         used: list[Hit]) -> float:
        """Best total weight of ancestor matches that do not overlap `used` or each other."""
        if not ancestors:
            return 0.0
        first, rest = ancestors[0], ancestors[1:]
        best = self._ancestors_score(rest, hits, used)  # this ancestor not named
        for h in hits.get(first.code, ()):
            if all(h.end <= u.start or u.end <= h.start for u in used):
                best = max(best, h.weight + self._ancestors_score(rest, hits, [*used, h]))
        return best

    def _contradicted(self, region: Region, hits: dict[str, list[Hit]],
                      text: str) -> Region | None:
        """A larger region named right before `region`'s own name (nothing but separators
        between) that does not contain it, when `region` is a county (or a place outside
        mainland jurisdiction) and none of its own ancestors is named: "石家庄桥东区" (桥东区 is
        张家口's; 石家庄's was abolished in 2014), "南宁城北区" (西宁's), "北京老城区" (洛阳's),
        "珠海湾仔". Addresses are written from the larger unit down, so the county's name is
        then a former or a street-level name: the answer is ambiguous (the caller asks, or the
        coordinates decide), never the county. A name further away is a shop's or a
        landmark's ("兰州拉面 天河区", "中山大学海珠区"): it does not count."""
        if region.level != "county" and not region.code.startswith(OUTSIDE_MAINLAND):
            return None
        chain = {r.code for r in self._chain(region.code)}
        if any(code in chain and code != region.code for code in hits):
            return None  # one of its ancestors is named
        starts = [h.start for h in hits[region.code]]
        for code, own in hits.items():
            other = self._by_code[code]
            if code in chain or other.level == "county" or region.code in {
                    r.code for r in self._chain(code)}:
                continue
            if any(h.end <= start and ADJACENT.fullmatch(text, h.end, start)
                   for h in own for start in starts):
                return other
        return None

    def _common_ancestor(self, regions: list[Region]) -> Region | None:
        chains = [[r.code for r in self._chain(x.code)] for x in regions]
        shared = set(chains[0]).intersection(*chains[1:])
        for code in chains[0]:  # deepest first
            if code in shared:
                return self._by_code[code]
        return None
