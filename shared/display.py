"""Times and ages as people read them (issue 11 §6).

Every human-readable text — pushes, SMS/chat over Apprise, consoles, the CAP `description` —
shows a moment in the deployment's zone (`Settings.display_timezone`, Asia/Shanghai by
default) as "2026-11-30 20:00（北京时间）", whatever offset the moment was sent with; machine
fields (CAP `sent`, JSON `issued_at`) keep ISO 8601 with their offset.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
# What people call the zone's time; a zone not named here is shown by its IANA name.
ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Chongqing": "北京时间", "Asia/Harbin": "北京时间",
              "Asia/Urumqi": "新疆时间", "Asia/Hong_Kong": "香港时间", "Asia/Macau": "澳门时间",
              "Asia/Taipei": "台北时间", "UTC": "UTC"}


@cache
def zone(name: str = DEFAULT_ZONE) -> ZoneInfo:
    """The zone by IANA name; ZoneInfoNotFoundError for an unknown name."""
    return ZoneInfo(name)


def people_time(moment: datetime | str, zone_name: str = DEFAULT_ZONE) -> str:
    """"2026-11-30 20:00（北京时间）" for an aware datetime or an ISO 8601 string with offset.
    A naive value is taken as UTC (what our own events carry); text that is not a time is
    returned unchanged, so a caller can pass a stored field through as it is."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return str(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    local = moment.astimezone(zone(zone_name))
    return f"{local:%Y-%m-%d %H:%M}（{ZONE_NAMES.get(zone_name, zone_name)}）"


def local_date(moment: datetime, zone_name: str = DEFAULT_ZONE) -> date:
    """The calendar day of `moment` in the deployment's zone."""
    return moment.astimezone(zone(zone_name)).date()


def age_on(birth_date: date, day: date) -> int:
    """Completed years on `day` (born on 29 February: a year older from 1 March in common
    years)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month,
                                                                   birth_date.day))
