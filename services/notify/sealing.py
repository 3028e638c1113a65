"""Subscribers at rest (issue 12, "Secrets and authority"): the signing secrets and the channel
(a webhook URL, an Apprise URL with a chat token or a member's number) are sealed with
AES-256-GCM (`cryptography`) before they are written to the compacted `homeward.subscribers.v1`
or to Redis; what the geo index and the consoles need (id, kind, name, place, region, channel
type) stays readable. The subscriber id is the associated data: a sealed part moved to another
record does not open.

Record shape (JSON)::

    {"subscriber_id", "kind", "name", "location", "region_code", "drills", "hub_id", "active",
     "channel_type", "sealed": "<key id>.<base64url(12-byte nonce + ciphertext + tag)>"}

where the plaintext is the JSON of {secret, previous_secrets, channel}.

Keys: `notify_subscriber_keys`, entries `<key id>:<base64url of 32 random bytes>`
(`python -m services.notify.sealing KEYID` prints a new one). The first seals; any opens the
records its id names. A key is rotated by putting the new one first, re-sealing (`python -m
services.notify.hubs --reseal`), then dropping the old one. A latest record that no key opens
stops a rebuild (SealError) rather than silently losing that subscriber: the key ring is wrong.
(AES-GCM rather than Fernet: ~1 µs a record instead of ~30 µs, on the fan-out's path.)
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import re
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.notify.audience import Subscriber
from shared.settings import Settings
from shared.text import STORED

log = logging.getLogger(__name__)

SEALED = ("secret", "previous_secrets", "channel")
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


class SealError(ValueError):
    """A sealed record none of the configured keys opens."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(key_id: str) -> str:
    """A key ring entry: `<key id>:<base64url of 32 random bytes>`."""
    if not KEY_ID.match(key_id):
        raise ValueError("a key id is 1-16 letters, digits, _ or -")
    return f"{key_id}:{_b64(secrets.token_bytes(32))}"


def development_key(jwt_secret: str) -> str:
    """The local stack's key, derived (HKDF-SHA256) from its JWT secret so that every process of
    one stack agrees without another setting."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"homeward notify subscriber seal v1").derive(jwt_secret.encode())
    return f"dev:{_b64(raw)}"


class SubscriberSeal:
    def __init__(self, keys: list[str]) -> None:
        """ValueError for an empty ring or an entry that is not `<key id>:<32 bytes>`."""
        if not keys:
            raise ValueError("at least one key is needed to seal subscribers")
        self.keys: dict[str, AESGCM] = {}
        for entry in keys:
            key_id, _, material = entry.partition(":")
            raw = _unb64(material) if material else b""
            if not KEY_ID.match(key_id) or len(raw) != 32 or key_id in self.keys:
                raise ValueError("each subscriber key is `<key id>:<base64url of 32 bytes>`, "
                                 "ids unique")
            self.keys[key_id] = AESGCM(raw)
        self.primary = next(iter(self.keys))

    @classmethod
    def from_settings(cls, settings: Settings) -> SubscriberSeal:
        """Raises ValueError outside development when HOMEWARD_NOTIFY_SUBSCRIBER_KEYS is
        empty: no subscriber secret is ever sealed with a key anyone could derive."""
        keys = list(settings.notify_subscriber_keys)
        if not keys:
            if settings.environment != "development":
                raise ValueError("HOMEWARD_NOTIFY_SUBSCRIBER_KEYS is required outside "
                                 "development (python -m services.notify.sealing KEYID)")
            if settings.jwt_secret is None:
                raise ValueError("HOMEWARD_NOTIFY_SUBSCRIBER_KEYS is required (no JWT secret "
                                 "to derive a development key from)")
            keys = [development_key(settings.jwt_secret.get_secret_value())]
        return cls(keys)

    def dumps(self, subscriber: Subscriber) -> str:
        """The record written to Kafka and Redis."""
        data = subscriber.model_dump(mode="json")
        inner = {k: data.pop(k) for k in SEALED}
        data["channel_type"] = inner["channel"]["type"]
        nonce = os.urandom(12)
        sealed = self.keys[self.primary].encrypt(
            nonce, json.dumps(inner, separators=(",", ":")).encode(),
            subscriber.subscriber_id.encode())
        data["sealed"] = f"{self.primary}.{_b64(nonce + sealed)}"
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def loads(self, raw: str | bytes) -> Subscriber:
        """A record as `dumps` wrote it (or, from before sealing, in clear: read, and sealed
        again on its next write). SealError when no configured key opens it."""
        data: dict[str, Any] = json.loads(raw)
        token = data.pop("sealed", None)
        data.pop("channel_type", None)
        if token is not None:
            key_id, _, body = str(token).partition(".")
            key = self.keys.get(key_id)
            try:
                if key is None:
                    raise InvalidTag
                blob = _unb64(body)
                data.update(json.loads(key.decrypt(
                    blob[:12], blob[12:], str(data.get("subscriber_id", "")).encode())))
            except (InvalidTag, ValueError) as exc:
                raise SealError(f"subscriber {data.get('subscriber_id')}: no key opens its "
                                f"record (key id {key_id!r})") from exc
        else:
            log.warning("subscriber %s stored in clear; re-seal it", data.get("subscriber_id"))
        return Subscriber.model_validate(data, context=STORED)

    def reseal(self, raw: str | bytes) -> str:
        """The record sealed with the first key (for key rotation)."""
        return self.dumps(self.loads(raw))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print a new subscriber key ring entry")
    parser.add_argument("key_id", help="1-16 letters, digits, _ or -, e.g. 2026a")
    print(new_key(parser.parse_args(argv).key_id))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
