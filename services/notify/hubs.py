"""Load real transport hubs as subscribers: every Chinese airport from the `airportsdata`
package, and railway/bus stations and ports from a CSV file the deployment supplies.

CSV format (UTF-8, header row required, one hub per row)::

    hub_id,name,category,lat,lon,region_code,channel_type,channel_url
    RAIL-CZ,长治站,railway,36.1956,113.1162,140403,console,
    BUS-CZ,长治客运东站,bus,36.1990,113.1400,,webhook,https://hub.example.cn/homeward

- hub_id: letters, digits, `_ . -` (≤40); the id in the hub staff's tokens (`hub_id` claim).
- category: railway | bus | port | airport | other (kept in the name shown to commanders).
- lat, lon: WGS-84 decimal degrees. region_code: 6-digit code, or empty to derive the county
  from the coordinates.
- channel_type: console (the hub console only), webhook (channel_url is the endpoint; the
  signing secret is printed once) or apprise (channel_url is an Apprise URL).

`python -m services.notify.hubs --airports [--csv stations.csv]` writes them to the Redis of
the settings (HOMEWARD_REDIS_URL); re-running updates names and places and keeps secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.notify.domain import SubscriberKind, SubscriberRequest
from shared.regions import region_index

CATEGORIES = {"railway", "bus", "port", "airport", "other"}
CSV_COLUMNS = ["hub_id", "name", "category", "lat", "lon", "region_code", "channel_type",
               "channel_url"]


def _region(lat: float, lon: float) -> str | None:
    region = region_index().nearest(lat, lon)
    return region.code if region is not None else None


def airports(country: str = "CN") -> Iterator[SubscriberRequest]:
    """Every airport of `country` with an IATA code, as a console hub `IATA-XXX`."""
    import airportsdata

    for iata, a in sorted(airportsdata.load("IATA").items()):
        if a["country"] != country:
            continue
        lat, lon = float(a["lat"]), float(a["lon"])
        yield SubscriberRequest(
            kind=SubscriberKind.hub, name=f"{a['name']} ({iata})", hub_id=f"IATA-{iata}",
            location={"lat": lat, "lon": lon},  # type: ignore[arg-type]
            region_code=_region(lat, lon), channel={"type": "console"},  # type: ignore[arg-type]
        )


class HubFileError(ValueError):
    pass


def stations(lines: Iterable[str]) -> Iterator[SubscriberRequest]:
    """Hubs from the CSV format above; a bad row raises HubFileError naming the line."""
    reader = csv.DictReader(lines)
    missing = set(CSV_COLUMNS) - set(reader.fieldnames or [])
    if missing:
        raise HubFileError(f"missing columns: {', '.join(sorted(missing))}")
    for n, row in enumerate(reader, start=2):
        try:
            category = (row["category"] or "other").strip()
            if category not in CATEGORIES:
                raise HubFileError(f"line {n}: category must be one of {sorted(CATEGORIES)}")
            lat, lon = float(row["lat"]), float(row["lon"])
            channel: dict[str, Any] = {"type": (row["channel_type"] or "console").strip()}
            if channel["type"] != "console":
                channel["url"] = row["channel_url"].strip()
            yield SubscriberRequest.model_validate({
                "kind": "hub", "name": row["name"].strip(), "hub_id": row["hub_id"].strip(),
                "location": {"lat": lat, "lon": lon},
                "region_code": (row["region_code"] or "").strip() or _region(lat, lon),
                "channel": channel,
            })
        except (ValueError, ValidationError) as exc:
            if isinstance(exc, HubFileError):
                raise
            raise HubFileError(f"line {n}: {exc}") from exc


async def load(requests: Iterable[SubscriberRequest]) -> list[tuple[str, str, str]]:
    """Register every hub; returns (hub_id, channel type, secret)."""
    from redis.asyncio import Redis

    from services.notify.app import build_notify
    from shared.kafka import EventPublisher, make_broker
    from shared.settings import Settings

    settings = Settings()
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    notify = build_notify(settings, redis, EventPublisher(
        make_broker(settings.kafka_bootstrap, "notify-hubs"), "/homeward/notify"))
    try:
        out: list[tuple[str, str, str]] = []
        for request in requests:
            sub = await notify.register(request)
            out.append((sub.subscriber_id, sub.channel.type, sub.secret))
        return out
    finally:
        await redis.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airports", action="store_true", help="every Chinese airport")
    parser.add_argument("--csv", type=Path, help="railway/bus stations and ports (see format)")
    args = parser.parse_args(argv)
    requests: list[SubscriberRequest] = list(airports()) if args.airports else []
    if args.csv:
        with args.csv.open(encoding="utf-8-sig", newline="") as f:
            requests += list(stations(f))
    loaded = asyncio.run(load(requests))
    for hub_id, channel, secret in loaded:
        print(hub_id, channel, secret if channel == "webhook" else "", sep="\t")
    print(f"{len(loaded)} hubs loaded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
