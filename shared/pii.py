"""Crypto-shredding of personal data in events (issue 13 §2).

Kafka records cannot be edited, so the personal fields of an event are sealed with the case's
own data key and the key is kept apart (shared/casekeys.py); purging a case deletes its key and
every copy of those fields, in every topic, DLQ and backup, becomes unreadable.

Envelope, in the event's JSON `data` (the one format of all three services):

    data["pii"] = {"v": 1, "alg": "A256GCM", "case": <case id>,
                   "n": <base64url 12-byte nonce>, "ct": <base64url ciphertext+tag>}

The plaintext is the JSON object `{"<dotted path>": <value>, ...}` of the sealed fields; the
associated data is `homeward.pii.v1|<case id>`, so an envelope moved to another case fails. In
the clear record each sealed field holds its *marker* (PURGED for text, None/[] otherwise): the
event still validates and its non-personal parts replay whether or not the key is held.

Data keys are 256-bit AES keys, wrapped (AES-GCM, associated data `homeward.case-key.v1|<case
id>`) with a master key chosen by key id from settings (`MasterKeys`): the first key wraps,
every listed key unwraps, so a master key rotates by putting the new one first, rewrapping every
stored data key (`python -m shared.casekeys --rewrap`; a key read is also rewrapped on read) and
dropping the old one once no wrapped key names it (shared/casekeys.py).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.faults import Transient

PURGED = "﹝已清除﹞"  # what a personal text field reads once its case key is gone
ENVELOPE = "pii"
VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12

# Personal fields per event payload (dotted paths into `data`) and the marker each one holds in
# the clear record. Child, reporter and tipster (issue 13 §2); the region, times, coordinates,
# sex, age and kind stay clear (what the case history and the rules need).
REPORT_FIELDS: Mapping[str, Any] = {
    "report.child.name": PURGED,
    "report.child.id_number": None,
    "report.child.birth_date": None,
    "report.child.description": "",
    "report.child.photo_urls": [],
    "report.reporter.name": PURGED,
    "report.reporter.phone": PURGED,
    "report.reporter.phone_ext": "",
    "report.reporter.phone_display": PURGED,
    "report.reporter.relation": "",
    "report.circumstances.suspect": "",
    "report.circumstances.vehicle": "",
    "report.circumstances.companions": "",
    "report.circumstances.notes": "",
}
TIP_FIELDS: Mapping[str, Any] = {"contact": "", "description": PURGED}
# An amendment of the child's details (issue 18): dispatch's homeward.case.details_amended.v1
# and alert's homeward.report.amended.v1 — the new values; the fields' names stay clear.
AMENDED_FIELDS: Mapping[str, Any] = {"details.amended": {}}
CASE_OPENED_FIELDS: Mapping[str, Any] = {"child_name": PURGED,
                                         "child_profile.description": ""}  # issue 16


class KeyUnavailable(Transient, LookupError):
    """The master key named by a wrapped data key is not configured (not the same as purged).
    A deployment fault, not the message's: transient (retried from the same offset, readiness
    503) until the key is configured again — never dead-lettered, never read as purged."""


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(kind: str, case_id: str) -> bytes:
    return f"homeward.{kind}.v1|{case_id}".encode()


@dataclass(frozen=True)
class MasterKeys:
    """Master keys by key id; `active` wraps new data keys, all of them unwrap."""

    keys: Mapping[str, bytes]
    active: str

    @classmethod
    def parse(cls, text: str) -> MasterKeys:
        """`kid:base64url-key[,kid:key...]`, the first one active; each key exactly 32 bytes.
        Raises ValueError naming what is wrong (the service does not start)."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            kid, sep, encoded = part.partition(":")
            if not sep or not kid or not encoded:
                raise ValueError("a master key is `key-id:base64url(32 random bytes)`")
            try:
                key = b64d(encoded)
            except ValueError:
                raise ValueError(f"master key {kid!r} is not base64url") from None
            if len(key) != KEY_BYTES:
                raise ValueError(f"master key {kid!r} must be {KEY_BYTES} bytes")
            if kid in keys:
                raise ValueError(f"master key id {kid!r} given twice")
            keys[kid] = key
        return cls(keys, next(iter(keys)))

    @staticmethod
    def generate(kid: str) -> str:
        """One line for a key file: a fresh random key with id `kid`."""
        return f"{kid}:{b64e(os.urandom(KEY_BYTES))}"

    def wrap(self, case_id: str, data_key: bytes) -> dict[str, str]:
        """The stored form of a data key: {"kid", "n", "ct"} (base64url)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active]).encrypt(nonce, data_key, _aad("case-key", case_id))
        return {"kid": self.active, "n": b64e(nonce), "ct": b64e(sealed)}

    def unwrap(self, case_id: str, wrapped: Mapping[str, str]) -> bytes:
        """The data key; KeyUnavailable when its master key is not configured, InvalidTag when
        the record was altered or belongs to another case."""
        master = self.keys.get(wrapped["kid"])
        if master is None:
            raise KeyUnavailable(f"master key {wrapped['kid']!r} is not configured")
        return AESGCM(master).decrypt(b64d(wrapped["n"]), b64d(wrapped["ct"]),
                                      _aad("case-key", case_id))


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def _split(path: str) -> tuple[list[str], str]:
    *parents, leaf = path.split(".")
    return parents, leaf


def _holder(data: dict[str, Any], parents: list[str]) -> dict[str, Any] | None:
    node: Any = data
    for name in parents:
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def seal(data: dict[str, Any], fields: Mapping[str, Any], case_id: str,
         data_key: bytes, copy: bool = True) -> dict[str, Any]:
    """A copy of `data` with `fields` moved into the envelope under `data["pii"]` and their
    markers in place. Fields absent from `data` are left absent. `copy=False`: `data` itself
    is changed and returned (a caller's own fresh dict, e.g. a model just dumped: a deep copy
    of a report is most of the cost of sealing it)."""
    out = deepcopy(data) if copy else data
    secret: dict[str, Any] = {}
    for path, marker in fields.items():
        parents, leaf = _split(path)
        holder = _holder(out, parents)
        if holder is not None and leaf in holder:
            secret[path] = holder[leaf]
            holder[leaf] = deepcopy(marker)
    plaintext = json.dumps(secret, ensure_ascii=False, separators=(",", ":")).encode()
    nonce = os.urandom(NONCE_BYTES)
    out[ENVELOPE] = {"v": VERSION, "alg": "A256GCM", "case": case_id, "n": b64e(nonce),
                     "ct": b64e(AESGCM(data_key).encrypt(nonce, plaintext,
                                                         _aad("pii", case_id)))}
    return out


def redact(data: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `data` with `fields` replaced by their markers and no envelope: what is
    written of a case whose key is gone (nothing personal may be written in clear)."""
    out = deepcopy(data)
    for path, marker in fields.items():
        parents, leaf = _split(path)
        holder = _holder(out, parents)
        if holder is not None and leaf in holder:
            holder[leaf] = deepcopy(marker)
    return out


def sealed_case(data: Mapping[str, Any]) -> str | None:
    """The case id whose key opens `data`, or None when nothing in it is sealed."""
    envelope = data.get(ENVELOPE)
    return str(envelope["case"]) if isinstance(envelope, dict) and "case" in envelope else None


def unseal(data: Mapping[str, Any], data_key: bytes | None) -> dict[str, Any]:
    """A copy of `data` with its sealed fields back in place and no envelope. Without the key
    (the case was purged) the markers stay: the non-personal parts still replay. Raises
    InvalidTag when the envelope was altered (a poison message, never silently accepted)."""
    out = {k: deepcopy(v) for k, v in data.items() if k != ENVELOPE}
    envelope = data.get(ENVELOPE)
    if not isinstance(envelope, dict) or data_key is None:
        return out
    plaintext = AESGCM(data_key).decrypt(b64d(envelope["n"]), b64d(envelope["ct"]),
                                         _aad("pii", str(envelope["case"])))
    for path, value in json.loads(plaintext).items():
        parents, leaf = _split(path)
        holder = _holder(out, parents)
        if holder is not None:
            holder[leaf] = value
    return out


__all__ = ["PURGED", "InvalidTag", "KeyUnavailable", "MasterKeys", "new_data_key", "seal",
           "sealed_case", "unseal"]
