"""Administrative division codes (PPCCDD): a county is the code itself, its city PPCC00, its
province PP0000; `000000` is national scope. Jurisdiction is a prefix test. Pure arithmetic on
the codes: the region data itself is shared.regions."""

from __future__ import annotations

__all__ = ["NATIONAL", "city_of", "province_of", "scope_prefix", "within"]

NATIONAL = "000000"


def scope_prefix(code: str) -> str:
    """The prefix every code inside `code`'s area starts with."""
    if code == NATIONAL:
        return ""
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def within(area_code: str, code: str) -> bool:
    """True when `code` lies inside the area `area_code` (a county, city, province or nation)."""
    return code.startswith(scope_prefix(area_code))


def city_of(code: str) -> str:
    return code[:4] + "00"


def province_of(code: str) -> str:
    return code[:2] + "0000"
