"""Where a child was last seen, as intake decides it (pure: data lookups are passed in).

Rules (issue 11 "Place"):

1. Jurisdiction comes from the most specific part the caller gave, in this order: region code,
   then address text, then coordinates; a later part that lies inside the chosen region refines
   it (a prefecture code and coordinates in one of its counties -> that county).
2. Coordinates are converted to WGS-84 from their `datum` and placed in a county by its
   boundary (shared.boundaries), not by the nearest county seat.
3. Parts that disagree (an address in one county, coordinates more than CONFLICT_KM outside the
   chosen area) do not refuse the report: the conflict, with every part, goes on the accepted
   event and in the 202 answer, and the commander sees it.
4. A development zone or new area (高新区, 经开区, 新区 …) is no division: it resolves to its
   host from data, or the report is refused `place_unresolved` asking for the county.
5. A retired region code is mapped to its successor (the answer says so); a split is decided
   by the address or the coordinates, else refused `region_code_split` with the candidates.
6. 香港 (81), 澳门 (82) and 台湾 (71) are outside mainland jurisdiction: refused
   `outside_mainland_jurisdiction`, whose message names the liaison path (the receiving
   county bureau reports through its provincial bureau to the Ministry of Public Security,
   which uses the mainland–Hong Kong/Macao police liaison mechanism or the 2009 Cross-Strait
   Joint Crime-Fighting and Judicial Mutual Assistance Agreement). No organ is invented there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.alert.domain import IntakeRefused
from shared.datum import Datum, to_wgs84
from shared.regions import AddressMatch, RetiredCode, scope_prefix, within
from shared.report import (
    LastSeen,
    PlaceConflict,
    PlacePart,
    PlaceSource,
    RegionCodeReplaced,
    Report,
    ResolvedLastSeen,
    ResolvedReport,
)

CONFLICT_KM = 3.0  # coordinates this far outside the chosen area disagree with it
OUTSIDE_MAINLAND = frozenset({"71", "81", "82"})  # 台湾, 香港, 澳门 (GB/T 2260 province codes)
_FIELDS: dict[PlaceSource, str] = {"region_code": "last_seen.region_code",
                                   "address": "last_seen.address", "coordinates": "last_seen.lat"}


class RegionLike(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def level(self) -> str: ...

    @property
    def parent(self) -> str | None: ...

    @property
    def lat(self) -> float: ...

    @property
    def lon(self) -> float: ...

    @property
    def centroid_inherited(self) -> bool: ...


class RegionLookup(Protocol):
    """What intake needs of the region data (shared.regions.RegionIndex provides it)."""

    def get(self, code: str) -> RegionLike | None: ...

    def retired(self, code: str) -> RetiredCode | None: ...

    def parse_address(self, text: str, inside: str | None = None) -> AddressMatch: ...


class LocatedLike(Protocol):
    @property
    def code(self) -> str: ...


class BoundaryLookup(Protocol):
    """What intake needs of the county boundaries (shared.boundaries.BoundaryIndex)."""

    def locate(self, lat: float, lon: float) -> LocatedLike | None: ...

    def distance_to_area_km(self, prefix: str, lat: float, lon: float) -> float: ...

    def inner_point(self, code: str) -> tuple[float, float] | None: ...


@dataclass(frozen=True)
class PlaceResolution:
    report: ResolvedReport
    derived: list[str]
    conflict: PlaceConflict | None = None
    replaced: RegionCodeReplaced | None = None

    def answer(self) -> dict[str, object]:
        """The `place` object of the 202 answer."""
        seen = self.report.last_seen
        return {
            "region_code": seen.region_code, "lat": seen.lat, "lon": seen.lon, "datum": "wgs84",
            "derived": self.derived,
            "conflict": self.conflict.model_dump(mode="json") if self.conflict else None,
            "region_code_replaced": (self.replaced.model_dump(mode="json")
                                     if self.replaced else None),
        }


def _related(a: str, b: str) -> bool:
    return within(a, b) or within(b, a)


def _deeper(a: str, b: str) -> bool:
    """b lies strictly inside a."""
    return a != b and within(a, b)


def resolve_place(report: Report, regions: RegionLookup,
                  boundaries: BoundaryLookup | None) -> PlaceResolution:
    """Complete and check the last-seen place (rules in the module docstring).

    Raises IntakeRefused 422 with `unknown_region` / `region_code_retired` (no successor
    known) / `region_code_split` on last_seen.region_code; `place_unresolved` when nothing
    places it (asking for the county); `outside_mainland_jurisdiction` on the part that names
    香港/澳门/台湾."""
    where = locate(report.last_seen, regions, boundaries)
    seen = ResolvedLastSeen.model_validate({
        **report.last_seen.model_dump(), "region_code": where.code, "lat": where.lat,
        "lon": where.lon, "datum": Datum.wgs84})
    # Only the place changed: the rest of `report` was validated a moment ago (the request
    # body) and is taken as it is, not validated a second time (issue 15: the intake profile).
    resolved = ResolvedReport.model_construct(
        _fields_set=set(Report.model_fields),
        **{**{name: getattr(report, name) for name in Report.model_fields}, "last_seen": seen})
    return PlaceResolution(resolved, where.derived, where.conflict, where.replaced)


@dataclass(frozen=True)
class Located:
    """A place completed by `locate`: county code, WGS-84 coordinates, and how it was decided."""

    code: str
    lat: float
    lon: float
    derived: list[str]
    conflict: PlaceConflict | None = None
    replaced: RegionCodeReplaced | None = None


def locate(seen: LastSeen, regions: RegionLookup, boundaries: BoundaryLookup | None) -> Located:
    """Any place given as region code / address / coordinates (a report's last-seen place, an
    unidentified child's found place), completed by the rules of the module docstring. Errors
    as `resolve_place`, their field under `last_seen.`."""
    derived: list[str] = []
    lat, lon = seen.lat, seen.lon
    if lat is not None and lon is not None and seen.datum is not Datum.wgs84:
        lat, lon = to_wgs84(lat, lon, seen.datum)
        derived.append("datum")

    parts: dict[PlaceSource, str | None] = {}
    # The region code the operator picked helps read a township in the address (region 成都市,
    # "街子镇" -> 崇州市); a retired or unknown code does not.
    match = regions.parse_address(seen.address, seen.region_code) if seen.address else None
    if match is not None:
        parts["address"] = _address_code(match)
    located = None
    if lat is not None and lon is not None and boundaries is not None:
        found = boundaries.locate(lat, lon)
        located = found.code if found is not None else None
        parts["coordinates"] = located

    replaced = None
    if seen.region_code is not None:
        given, replaced = _given_code(seen.region_code, regions, parts)
        parts = {"region_code": given, **parts}

    chosen_source = next((s for s, c in parts.items() if c is not None), None)
    if chosen_source is None:
        _unresolved(regions, seen.address, match, lat)
    assert chosen_source is not None
    code = parts[chosen_source]
    assert code is not None
    _check_mainland(code, chosen_source)
    for other in parts.values():  # refine: a later part that lies inside the chosen region
        if other is not None and _deeper(code, other) and other[:2] not in OUTSIDE_MAINLAND:
            code = other
    if code != seen.region_code:
        derived.append("region_code")

    conflict = _conflict(chosen_source, code, parts, regions, boundaries, lat, lon)
    region = regions.get(code)
    assert region is not None
    if lat is None or lon is None:
        lat, lon = _point_of(region, boundaries)
        derived.append("lat_lon")
    return Located(code, lat, lon, derived, conflict, replaced)


def _point_of(region: RegionLike, boundaries: BoundaryLookup | None) -> tuple[float, float]:
    """Where the search is centred when no coordinates were given: the region's seat point;
    for a county whose seat point is only its parent's (shared/data/README.md "inherited":
    the 兵团 cities carry 乌鲁木齐's, hundreds of kilometres off), a point inside its boundary.
    A county with neither is refused `coordinates_required` (field last_seen.lat): the alert
    would reach the hubs around another city first."""
    if not region.centroid_inherited or region.level != "county":
        return region.lat, region.lon
    inner = boundaries.inner_point(region.code) if boundaries is not None else None
    if inner is None:
        raise IntakeRefused(422, "coordinates_required", "last_seen.lat",
                            hint=f" — {region.code} {region.name}")
    return inner


def _address_code(match: AddressMatch) -> str | None:
    """The region an address names; an address with a zone whose host it does not pin down
    below a province counts as nothing (the caller must name the county)."""
    region = match.region
    if region is None:
        return None
    if match.zone is not None and region.level == "province":
        return None
    return region.code


def _given_code(given: str, regions: RegionLookup,
                parts: dict[PlaceSource, str | None]) -> tuple[str, RegionCodeReplaced | None]:
    if regions.get(given) is not None:
        return given, None
    history = regions.retired(given)
    successors = [c for c in history.successors if regions.get(c)] if history else []
    if history is None:
        raise IntakeRefused(422, "unknown_region", "last_seen.region_code")
    if not successors:
        raise IntakeRefused(422, "region_code_retired", "last_seen.region_code",
                            given=given, name=history.name, year=history.year)
    chosen, resolved_by = successors[0], "history"
    if len(successors) > 1:
        for source in ("address", "coordinates"):
            named = parts.get(source)
            fits = [s for s in successors if named is not None and _related(s, named)]
            if len(fits) == 1:
                chosen, resolved_by = fits[0], source
                break
        else:
            names = "、".join(f"{c} {_name(regions, c)}" for c in successors)
            raise IntakeRefused(422, "region_code_split", "last_seen.region_code",
                                given=given, name=history.name, year=history.year,
                                candidates=names)
    return chosen, RegionCodeReplaced(
        given=given, given_name=history.name, region_code=chosen,
        name=_name(regions, chosen), year=history.year, doc_no=history.doc_no,
        resolved_by=resolved_by)  # type: ignore[arg-type]


def _name(regions: RegionLookup, code: str | None) -> str:
    region = regions.get(code) if code else None
    return region.name if region is not None else ""


def _full_name(regions: RegionLookup, code: str) -> str:
    """成都市, 北京市朝阳区: the parent's name in front of a county's."""
    region = regions.get(code)
    if region is None:
        return ""
    parent = regions.get(region.parent) if region.level == "county" and region.parent else None
    return (parent.name if parent else "") + region.name


def _check_mainland(code: str, source: PlaceSource) -> None:
    if code[:2] in OUTSIDE_MAINLAND:
        raise IntakeRefused(422, "outside_mainland_jurisdiction", _FIELDS[source])


def _unresolved(regions: RegionLookup, address: str, match: AddressMatch | None,
                lat: float | None) -> None:
    """Refuse, asking for the county; the hint names the zone and its possible hosts."""
    hint = ""
    if match is not None and (match.zone or match.candidates):
        hosts = " / ".join(f"{c} {_full_name(regions, c)}" for c in match.candidates)
        hint = " — " + " → ".join(x for x in (match.zone or "", hosts) if x)
    field = "last_seen.region_code"
    if lat is not None and not address:
        field = "last_seen.lat"
    raise IntakeRefused(422, "place_unresolved", field, hint=hint)


def _conflict(chosen: PlaceSource, code: str, parts: dict[PlaceSource, str | None],
              regions: RegionLookup, boundaries: BoundaryLookup | None,
              lat: float | None, lon: float | None) -> PlaceConflict | None:
    """Parts that name a region unrelated to the chosen one; coordinates only when they lie
    more than CONFLICT_KM outside the chosen area (borders are not sharp at that scale)."""
    disagree = False
    out: list[PlacePart] = []
    for source, named in parts.items():
        part = PlacePart(source=source, region_code=named, name=_name(regions, named))
        if source == "coordinates" and lat is not None and lon is not None \
                and boundaries is not None:
            km = boundaries.distance_to_area_km(scope_prefix(code), lat, lon)
            part.distance_km = round(km, 1) if km != float("inf") else None
            disagree |= km > CONFLICT_KM
        elif named is not None and not _related(code, named):
            disagree = True
        out.append(part)
    if not disagree:
        return None
    return PlaceConflict(chosen=chosen, region_code=code, parts=out)
