"""The region whose centroid is nearest a point: great-circle distances over the regions' seat
points, searched in 1° cells in growing rings around the point (issue 15: the intake profile).
Used by shared.regions.RegionIndex.nearest."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.regions import Level, Region

__all__ = ["CentroidGrid", "great_circle_km"]

_EARTH_KM = 6371.0088
_Point = tuple["Region", float, float, float]  # region, lat and lon in radians, cos(lat)
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


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points (degrees), haversine on a sphere of the
    Earth's mean radius."""
    la1, la2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((la2 - la1) / 2) ** 2
         + math.cos(la1) * math.cos(la2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return _h_to_km(h)


class CentroidGrid:
    """The regions' centroids by level, in 1°x1° cells. Regions whose centroid was inherited
    from the parent are left out: they sit on the parent's seat, not their own."""

    def __init__(self, regions: Iterable[Region]) -> None:
        # level -> all points, and level -> 1°x1° cell -> points
        self._points: dict[str, list[_Point]] = {}
        self._grid: dict[str, dict[tuple[int, int], list[_Point]]] = {}
        for r in regions:
            if not r.centroid_inherited:
                la, lo = math.radians(r.lat), math.radians(r.lon)
                pt = (r, la, lo, math.cos(la))
                self._points.setdefault(r.level, []).append(pt)
                cell = (math.floor(r.lat), math.floor(r.lon))
                self._grid.setdefault(r.level, {}).setdefault(cell, []).append(pt)

    def nearest(self, lat: float, lon: float, level: Level) -> Region | None:
        """The region of `level` whose centroid is closest (great circle), None when there is
        no region of that level. Searches 1° cells in growing rings around the point and stops
        once no unvisited cell can hold anything nearer (tens of microseconds); far outside
        China it scans them all."""
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
