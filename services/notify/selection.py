"""Radius selection in pages (issue 18 §6: "stream recipients to the planner in pages as they are
found — the first jobs leave before the last are selected"). Pure rules, no I/O; the planner
(services.notify.recipients.Selection.pages) runs them against Redis's geo indexes.

The rule, in order:

1. A version goes to the recipients it newly covers: everyone of an audience kind in its circle
   who has not heard of the alert from an earlier version (`fresh`). For a widening that is the
   annulus between the previous and the new radius plus anyone inside the old circle not yet
   told (registered since, or of a kind the audience gained).
2. Hubs first (they act on it), then the public kinds (domain.PUBLIC_KINDS).
3. A kind with few members (≤ `cells_above`, e.g. hubs, media) is searched in one query of the
   whole circle. A kind with many (volunteers) is searched cell by cell (`cells`): a grid of
   `cell_km` squares over the circle's bounding box, those touching the annulus first, nearest
   first, then those inside the old circle; each point belongs to exactly one cell (`owns`), so
   no recipient is selected twice in one run.
4. The first page is handed on as soon as it holds anyone; later pages once they hold `page`
   recipients (or at the end).
5. Each page is recorded (who heard of the alert from this version) and then published; the
   whole run holds the alert's lock (renewed page by page), as one publish of every job did
   before, so a later version or the Cancel is decided and published only after the last
   page: on each recipient's partition the versions stay in order.
6. If the planner dies between pages, the redelivered trigger (a widening's durable timer, a
   report or a release consumed again) selects again: pages recorded at this version are
   published again with the same webhook-ids (domain.delivery_id is stable per (alert,
   version, recipient)), which the delivery workers claim once, so nobody is lost and nobody
   gets a second distinct delivery.

Distances are Redis's own (haversine on a sphere of radius `EARTH_KM`, the constant of Redis's
geohash_helper.c), so a cell search keeps exactly whom one GEOSEARCH of the circle would.
Circles crossing the antimeridian are out of scope (Homeward's regions are in China).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_KM = 6372.797560856  # Redis geohash_helper.c EARTH_RADIUS_IN_METERS / 1000
KM_PER_DEG_LAT = math.pi * EARTH_KM / 180.0
MARGIN_KM = 1.0  # a cell's box is searched this much larger than the cell itself


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km, as Redis's geohashGetDistance computes it."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    u = math.sin((p2 - p1) / 2)
    v = math.sin(math.radians(lon2 - lon1) / 2)
    a = u * u + math.cos(p1) * math.cos(p2) * v * v
    return 2.0 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Cell:
    """[lat0, lat1) × [lon0, lon1) in degrees; `inner`: wholly inside the old circle."""

    lat0: float
    lat1: float
    lon0: float
    lon1: float
    inner: bool = False

    @property
    def centre(self) -> tuple[float, float]:
        return (self.lat0 + self.lat1) / 2, (self.lon0 + self.lon1) / 2

    def box_km(self) -> tuple[float, float]:
        """(width, height) in km of a box centred on the cell that contains all of it: the
        width at the parallel nearest the equator, plus MARGIN_KM each side."""
        widest = max(math.cos(math.radians(self.lat0)), math.cos(math.radians(self.lat1)))
        width = (self.lon1 - self.lon0) * KM_PER_DEG_LAT * widest
        height = (self.lat1 - self.lat0) * KM_PER_DEG_LAT
        return width + 2 * MARGIN_KM, height + 2 * MARGIN_KM

    def corners(self) -> list[tuple[float, float]]:
        return [(a, o) for a in (self.lat0, self.lat1) for o in (self.lon0, self.lon1)]


def owns(cell: Cell, lat: float, lon: float) -> bool:
    """Whether the point falls in the cell (half-open: a point on an edge has one owner)."""
    return cell.lat0 <= lat < cell.lat1 and cell.lon0 <= lon < cell.lon1


def _nearest_km(cell: Cell, lat: float, lon: float) -> float:
    """A lower bound of the distance from (lat, lon) to the cell (the clamped point, less a
    cell's diagonal share of curvature: MARGIN_KM)."""
    near = (min(max(lat, cell.lat0), cell.lat1), min(max(lon, cell.lon0), cell.lon1))
    return distance_km(lat, lon, *near) - MARGIN_KM


def cells(lat: float, lon: float, inner_km: float, outer_km: float,
          cell_km: float) -> list[Cell]:
    """The grid of about `cell_km` squares covering the circle of `outer_km` around (lat, lon),
    without cells wholly outside it; cells touching the annulus (inner_km, outer_km] first,
    then those wholly inside the `inner_km` circle (marked `inner`); nearest first in each.
    Raises ValueError for a non-positive `cell_km` or outer_km."""
    if cell_km <= 0 or outer_km <= 0:
        raise ValueError("cell_km and outer_km must be positive")
    dlat = outer_km / KM_PER_DEG_LAT
    lat_lo, lat_hi = max(lat - dlat, -89.0), min(lat + dlat, 89.0)
    widest = min(math.cos(math.radians(lat_lo)), math.cos(math.radians(lat_hi)))
    dlon = min(outer_km / (KM_PER_DEG_LAT * max(widest, 0.01)), 179.0)
    rows = max(1, math.ceil((lat_hi - lat_lo) * KM_PER_DEG_LAT / cell_km))
    cols = max(1, math.ceil(2 * dlon * KM_PER_DEG_LAT * widest / cell_km))
    step_lat, step_lon = (lat_hi - lat_lo) / rows, 2 * dlon / cols
    found: list[tuple[float, Cell]] = []
    for r in range(rows):
        for c in range(cols):
            cell = Cell(lat_lo + r * step_lat, lat_lo + (r + 1) * step_lat,
                        lon - dlon + c * step_lon, lon - dlon + (c + 1) * step_lon)
            if r == rows - 1:  # the last row and column own their far edge too
                cell = Cell(cell.lat0, math.nextafter(lat_hi, math.inf), cell.lon0, cell.lon1)
            if c == cols - 1:
                cell = Cell(cell.lat0, cell.lat1, cell.lon0, math.nextafter(lon + dlon, math.inf))
            near = _nearest_km(cell, lat, lon)
            if near > outer_km:
                continue
            far = max(distance_km(lat, lon, *p) for p in cell.corners()) + MARGIN_KM
            inner = far < inner_km
            found.append((near, Cell(cell.lat0, cell.lat1, cell.lon0, cell.lon1, inner)))
    found.sort(key=lambda nc: (nc[1].inner, nc[0]))
    return [cell for _, cell in found]


def keep(rows: list[tuple[str, float, float]], cell: Cell, lat: float, lon: float,
         radius_km: float) -> list[str]:
    """Of a cell's box search (id, lat, lon), the ids the cell owns within `radius_km`."""
    return [i for i, a, o in rows
            if owns(cell, a, o) and distance_km(lat, lon, a, o) <= radius_km]


def fresh(ids: list[str], told: list[int | None], version: int) -> list[str]:
    """Who this version newly covers: not told yet (None), or told from this very version (a
    redelivery: published again under the same webhook-ids, claimed once by the workers)."""
    return [i for i, v in zip(ids, told, strict=True) if v is None or v >= version]
