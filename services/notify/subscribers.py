"""What a new subscriber is made of: its region (every subscriber has one, so that every read
of a hub can be scoped by region) and its signing secret; which of two copies is newer."""

from __future__ import annotations

import base64
import secrets

from services.notify.audience import Subscriber, SubscriberRequest
from shared.boundaries import boundary_index
from shared.regions import region_index, scope_prefix, within


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def region_of(lat: float, lon: float) -> str | None:
    """The county whose boundary holds the point (an airport often lies in a neighbouring
    county of the city it is named after: 广州白云 in 花都区); the nearest seat only off every
    boundary; None without region data."""
    located = boundary_index().locate(lat, lon)
    if located is not None:
        return located.code
    region = region_index().nearest(lat, lon)
    return region.code if region is not None else None


# How far outside the region it is registered under a subscriber may stand: an airport or a
# station on a border (北京大兴 lies across 北京 and 河北), a simplified boundary.
REGION_SLACK_KM = 10.0


class LocationOutsideRegion(ValueError):
    """The location lies outside the region_code given (more than REGION_SLACK_KM)."""


def within_reach(region_code: str, lat: float, lon: float) -> bool:
    """Whether (lat, lon) lies in the area of `region_code` or within REGION_SLACK_KM of it
    (county boundaries, shared.boundaries). For a region the boundary data has no polygon of
    (the six newest 新疆 counties, cut from others: shared/data/README.md; their seats in the
    region data are not where they are), in its province. A code no longer in use is
    nowhere."""
    km = boundary_index().distance_to_area_km(scope_prefix(region_code), lat, lon)
    if km != float("inf"):
        return km <= REGION_SLACK_KM
    located = region_of(lat, lon)
    return (region_index().get(region_code) is not None and located is not None
            and within(region_code[:2] + "0000", located))


def registered(request: SubscriberRequest) -> Subscriber:
    """The subscriber `request` makes, with a new secret and its region: the one given, else
    the one derived from its location. Its id is set by the caller. ValueError when no region
    can be found; LocationOutsideRegion when the location lies outside the region given.

    Which alerts a hub receives is decided by its location, and who may register it by its
    region: the two must agree, or an admin of one province could place a hub under their own
    region code anywhere in the country and read other provinces' restricted alerts."""
    lat, lon = request.location.lat, request.location.lon
    if request.region_code is not None and not within_reach(request.region_code, lat, lon):
        raise LocationOutsideRegion(
            f"location ({lat}, {lon}) lies outside region {request.region_code} (more than "
            f"{REGION_SLACK_KM:g} km); give the region_code of where the subscriber is")
    region = request.region_code or region_of(lat, lon)
    if region is None:
        raise ValueError("no region for this location; give region_code")
    return Subscriber(**{**request.model_dump(), "region_code": region}, subscriber_id="",
                      secret=new_secret())


def newest(logged: Subscriber, stored: Subscriber | None) -> Subscriber:
    """Of a subscriber's copy on the compacted log and its copy in Redis (None: absent or no
    key opens it), the one to keep: Redis's only when its revision is higher (a change written
    since the log was read); the log's otherwise, the system of record (Redis can lag it: a
    crash between the two writes, a Redis restored from an older snapshot)."""
    return stored if stored is not None and stored.revision > logged.revision else logged
