"""Radius selection in pages (issue 18 §6): the grid of cells covers the circle, each point has
exactly one cell, the annulus comes first, and `fresh` keeps who this version newly covers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify import selection
from services.notify.selection import Cell, cells, distance_km, fresh, keep, owns
from services.notify.timers import MIN_WAIT_S, wait_s

CENTRES = [(36.19, 113.11), (22.5, 114.05), (45.75, 126.6), (39.9, 116.4), (0.0, 0.0)]


@pytest.mark.parametrize(("a", "b", "km"), [
    ((0.0, 0.0), (0.0, 1.0), 111.226),  # Redis: GEODIST of 1° along the equator
    ((0.0, 0.0), (1.0, 0.0), 111.226),  # and 1° along a meridian
    ((36.19, 113.11), (36.19, 113.11), 0.0),
])
def test_distance_is_redis_haversine(a: tuple[float, float], b: tuple[float, float],
                                     km: float) -> None:
    assert distance_km(*a, *b) == pytest.approx(km, abs=0.1)


@pytest.mark.parametrize(("inner", "outer", "cell_km"), [
    (0.0, 100.0, 50.0), (100.0, 200.0, 50.0), (300.0, 500.0, 50.0), (200.0, 300.0, 120.0),
    (0.0, 10.0, 50.0),
])
@pytest.mark.parametrize("centre", CENTRES)
def test_every_point_in_range_has_exactly_one_cell(centre: tuple[float, float], inner: float,
                                                   outer: float, cell_km: float) -> None:
    grid = cells(*centre, inner, outer, cell_km)
    rng = random.Random(7)
    span = outer / selection.KM_PER_DEG_LAT * 1.6
    for _ in range(3000):
        lat = centre[0] + rng.uniform(-span, span)
        lon = centre[1] + rng.uniform(-span * 1.5, span * 1.5)
        owners = [c for c in grid if owns(c, lat, lon)]
        if distance_km(*centre, lat, lon) <= outer:
            assert len(owners) == 1, (lat, lon)
            owner = owners[0]
            # the cell's box (what Redis searches) holds the point
            width, height = owner.box_km()
            clat, clon = owner.centre
            assert abs(lat - clat) * selection.KM_PER_DEG_LAT <= height / 2
            assert distance_km(lat, clon, lat, lon) <= width / 2
            if distance_km(*centre, lat, lon) > inner:
                assert not owner.inner  # a newly covered point is never left for later
        else:
            assert len(owners) <= 1


@pytest.mark.parametrize("centre", CENTRES)
def test_annulus_cells_come_first_nearest_first(centre: tuple[float, float]) -> None:
    grid = cells(*centre, 300.0, 500.0, 50.0)
    flags = [c.inner for c in grid]
    assert flags == sorted(flags)  # all annulus cells, then the inner ones
    assert any(flags) and not all(flags)


def test_rejects_a_non_positive_cell() -> None:
    with pytest.raises(ValueError):
        cells(36.0, 113.0, 0.0, 100.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(lat=st.floats(-60, 60), lon=st.floats(-170, 170),
       inner=st.floats(0, 400), extra=st.floats(1, 300), cell_km=st.floats(10, 200),
       bearing=st.floats(0, 1), frac=st.floats(0, 1))
def test_keep_selects_a_point_once_iff_in_range(lat: float, lon: float, inner: float,
                                                 extra: float, cell_km: float, bearing: float,
                                                 frac: float) -> None:
    outer = inner + extra
    grid = cells(lat, lon, inner, outer, cell_km)
    # a point somewhere up to 1.2 × the radius away, in any direction
    dist_deg = frac * 1.2 * outer / selection.KM_PER_DEG_LAT
    plat = lat + dist_deg * (2 * bearing - 1)
    plon = lon + dist_deg * (1 - abs(2 * bearing - 1)) * (1 if bearing < 0.5 else -1)
    row = [("P", plat, plon)]
    kept = [i for c in grid for i in keep(row, c, lat, lon, outer)]
    assert kept == (["P"] if distance_km(lat, lon, plat, plon) <= outer else [])


@pytest.mark.parametrize(("told", "version", "expected"), [
    ([None, None], 3, ["a", "b"]),        # nobody told: both newly covered
    ([1, None], 3, ["b"]),                # a heard from version 1: not again
    ([3, 2], 3, ["a"]),                   # a recorded at 3 (a redelivery): again, same ids
    ([4, None], 3, ["a", "b"]),           # recorded by a later version: this one still counts
])
def test_fresh(told: list[int | None], version: int, expected: list[str]) -> None:
    assert fresh(["a", "b"], told, version) == expected


def test_cell_owns_half_open() -> None:
    cell = Cell(10.0, 11.0, 20.0, 21.0)
    assert owns(cell, 10.0, 20.0) and not owns(cell, 11.0, 20.5) and not owns(cell, 10.5, 21.0)


@pytest.mark.parametrize(("next_due", "now", "expected"), [
    (None, 100.0, 0.25),        # nothing scheduled: the usual tick
    (100.1, 100.0, 0.1),        # a boundary in 100 ms: wake then, not a tick later
    (105.0, 100.0, 0.25),       # far off: the usual tick
    (99.0, 100.0, MIN_WAIT_S),  # already due (a backlog): at once, never a busy loop
])
def test_timer_loop_wakes_when_the_next_member_is_due(next_due: float | None, now: float,
                                                      expected: float) -> None:
    assert wait_s(0.25, next_due, now) == pytest.approx(expected)
