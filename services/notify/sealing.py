"""Subscribers at rest (issue 12, "Secrets and authority"): the signing secrets and the channel
(a webhook URL, an Apprise URL with a chat token or a member's phone) are sealed with Fernet
(`cryptography`: AES-128-CBC + HMAC-SHA256, authenticated) before they are written to the
compacted `homeward.subscribers.v1` or to Redis; what the geo index and the consoles need
(id, kind, name, place, region, channel type) stays readable.

Record shape (JSON)::

    {"subscriber_id", "kind", "name", "location", "region_code", "drills", "hub_id", "active",
     "channel_type", "sealed": "<Fernet token of {secret, previous_secrets, channel}>"}

Keys: `notify_subscriber_keys`, a MultiFernet ring: the first key seals, every key opens, so a
key is rotated by putting the new one first, re-sealing (`python -m services.notify.hubs
--reseal`) and then dropping the old one. A latest record that no key opens stops a rebuild
(SealError) rather than silently losing that subscriber: the key ring is wrong.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.notify.domain import Subscriber
from shared.settings import Settings

log = logging.getLogger(__name__)

SEALED = ("secret", "previous_secrets", "channel")


class SealError(ValueError):
    """A sealed record none of the configured keys opens."""


def development_key(jwt_secret: str) -> str:
    """The local stack's key, derived (HKDF-SHA256) from its JWT secret so that every process of
    one stack agrees without another setting."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"homeward notify subscriber seal v1").derive(jwt_secret.encode())
    return base64.urlsafe_b64encode(raw).decode()


class SubscriberSeal:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one key is needed to seal subscribers")
        self.fernet = MultiFernet([Fernet(k.encode()) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriberSeal:
        """Raises ValueError outside development when HOMEWARD_NOTIFY_SUBSCRIBER_KEYS is
        empty: no subscriber secret is ever sealed with a key anyone could derive."""
        keys = list(settings.notify_subscriber_keys)
        if not keys:
            if settings.environment != "development":
                raise ValueError("HOMEWARD_NOTIFY_SUBSCRIBER_KEYS is required outside "
                                 "development (a JSON list of Fernet keys)")
            keys = [development_key(settings.jwt_secret)]
        return cls(keys)

    def dumps(self, subscriber: Subscriber) -> str:
        """The record written to Kafka and Redis."""
        data = subscriber.model_dump(mode="json")
        inner = {k: data.pop(k) for k in SEALED}
        data["channel_type"] = inner["channel"]["type"]
        data["sealed"] = self.fernet.encrypt(
            json.dumps(inner, separators=(",", ":")).encode()).decode()
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def loads(self, raw: str | bytes) -> Subscriber:
        """A record as `dumps` wrote it (or, from before sealing, in clear: read, and sealed
        again on its next write)."""
        data: dict[str, Any] = json.loads(raw)
        token = data.pop("sealed", None)
        data.pop("channel_type", None)
        if token is not None:
            try:
                data.update(json.loads(self.fernet.decrypt(token.encode())))
            except InvalidToken as exc:
                raise SealError(f"subscriber {data.get('subscriber_id')}: no key opens "
                                "its record") from exc
        else:
            log.warning("subscriber %s stored in clear; re-seal it", data.get("subscriber_id"))
        return Subscriber.model_validate(data)

    def reseal(self, raw: str | bytes) -> str:
        """The record sealed with the first key (for key rotation)."""
        return self.dumps(self.loads(raw))
