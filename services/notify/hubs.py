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

`python -m services.notify.hubs --airports [--csv stations.csv]` registers them (the subscriber
log on Kafka, then Redis, per HOMEWARD_KAFKA_BOOTSTRAP / HOMEWARD_REDIS_URL); re-running leaves
hubs already registered as they are (listed as `exists`, no secret). `--rebuild` puts every
subscriber back into Redis from the compacted subscriber log after Redis lost them; `--reseal`
writes every subscriber again sealed with the first of HOMEWARD_NOTIFY_SUBSCRIBER_KEYS (after
a new key was put first, before the old one is dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.notify.audience import SubscriberKind, SubscriberRequest
from services.notify.subscribers import region_of, within_reach

CATEGORIES = {"railway", "bus", "port", "airport", "other"}
CSV_COLUMNS = ["hub_id", "name", "category", "lat", "lon", "region_code", "channel_type",
               "channel_url"]


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
            region_code=region_of(lat, lon), channel={"type": "console"},  # type: ignore[arg-type]
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
            given = (row["region_code"] or "").strip()
            if given and not within_reach(given, lat, lon):  # before any hub is registered
                raise HubFileError(f"line {n}: the location lies outside region_code {given}")
            yield SubscriberRequest.model_validate({
                "kind": "hub", "name": row["name"].strip(), "hub_id": row["hub_id"].strip(),
                "location": {"lat": lat, "lon": lon},
                "region_code": given or region_of(lat, lon),
                "channel": channel,
            })
        except (ValueError, ValidationError) as exc:
            if isinstance(exc, HubFileError):
                raise
            raise HubFileError(f"line {n}: {exc}") from exc


@asynccontextmanager
async def _notify() -> AsyncIterator[Any]:
    from services.notify.adapters import make_redis
    from services.notify.app import build_notify
    from services.notify.logs import SubscriberLog
    from shared import topics
    from shared.kafka import EventPublisher, KafkaAccess, make_broker
    from shared.tokens import cli_settings

    settings = cli_settings()  # beside `make up`: its generated key, as shared.tokens
    redis = make_redis(settings.redis_url)
    access = KafkaAccess.from_settings(settings)
    broker = make_broker(settings.kafka_bootstrap, "notify-hubs", access)
    log = SubscriberLog(access, topics.SUBSCRIBERS)
    await log.ensure_topic(settings.kafka_replication_factor, settings.kafka_min_insync_replicas)
    await broker.start()
    try:
        yield build_notify(settings, redis, EventPublisher(broker, "/homeward/notify")), log
    finally:
        await broker.stop()
        await redis.aclose()


async def load(requests: Iterable[SubscriberRequest]) -> list[tuple[str, str, str]]:
    """Register every hub not registered yet; returns (hub_id, channel type, secret), the
    secret empty for a hub already there (left as it is: its secret is never shown again)."""
    from services.notify.handlers import Conflict

    async with _notify() as (notify, _):
        out: list[tuple[str, str, str]] = []
        for request in requests:
            try:
                sub = await notify.register(request)
            except Conflict:
                out.append((str(request.hub_id), "exists", ""))
                continue
            out.append((sub.subscriber_id, sub.channel.type, sub.secret))
        return out


async def rebuild() -> int:
    async with _notify() as (notify, log):
        return int(await notify.rebuild_subscribers(log))


async def reseal() -> int:
    async with _notify() as (notify, log):
        return int(await notify.reseal_subscribers(log))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--airports", action="store_true", help="every Chinese airport")
    parser.add_argument("--csv", type=Path, help="railway/bus stations and ports (see format)")
    parser.add_argument("--rebuild", action="store_true",
                        help="put every subscriber back into Redis from the subscriber log")
    parser.add_argument("--reseal", action="store_true",
                        help="write every subscriber again, sealed with the first key")
    args = parser.parse_args(argv)
    if args.rebuild:
        print(f"{asyncio.run(rebuild())} subscribers restored from the log")
    if args.reseal:
        print(f"{asyncio.run(reseal())} subscribers sealed with the first key")
    requests: list[SubscriberRequest] = list(airports()) if args.airports else []
    if args.csv:
        with args.csv.open(encoding="utf-8-sig", newline="") as f:
            requests += list(stations(f))
    if requests:
        loaded = asyncio.run(load(requests))
        for hub_id, channel, secret in loaded:
            print(hub_id, channel, secret if channel == "webhook" else "", sep="\t")
        print(f"{len(loaded)} hubs loaded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
