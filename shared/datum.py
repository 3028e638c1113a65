"""Geodetic datums of coordinates handed out in China, and conversion to WGS-84.

Chinese map apps and phones give GCJ-02 (高德/腾讯/Apple Maps in China, "火星坐标") or BD-09
(百度); GPS receivers, browsers' geolocation and international maps give WGS-84. Homeward
stores WGS-84 only. The conversion is `prcoords` (CC0, <https://github.com/Artoria2e5/PRCoords>),
its iterative inverses (~0.1 mm, far below what a phone reports). GCJ-02 is defined only
inside China: points outside prcoords' China box are returned as they are (the obfuscation is
not applied there by the map apps either).
"""

from __future__ import annotations

import warnings
from enum import StrEnum

import prcoords


class Datum(StrEnum):
    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


DEFAULT_DATUM = Datum.wgs84


def in_china_box(lat: float, lon: float) -> bool:
    """Inside the box where GCJ-02/BD-09 are applied (prcoords' `sanity_in_china_p`)."""
    return bool(prcoords.sanity_in_china_p(prcoords.Coords(lat, lon)))


def to_wgs84(lat: float, lon: float, datum: Datum) -> tuple[float, float]:
    """(lat, lon) in degrees given in `datum` -> (lat, lon) in WGS-84."""
    if datum is Datum.wgs84 or not in_china_box(lat, lon):
        return lat, lon
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert = prcoords.gcj_wgs_bored if datum is Datum.gcj02 else prcoords.bd_wgs_bored
        out = convert(prcoords.Coords(lat, lon))
    return float(out.lat), float(out.lon)


def from_wgs84(lat: float, lon: float, datum: Datum) -> tuple[float, float]:
    """(lat, lon) in WGS-84 -> the same point in `datum` (what a map app would show)."""
    if datum is Datum.wgs84 or not in_china_box(lat, lon):
        return lat, lon
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        convert = prcoords.wgs_gcj if datum is Datum.gcj02 else prcoords.wgs_bd
        out = convert(prcoords.Coords(lat, lon))
    return float(out.lat), float(out.lon)
