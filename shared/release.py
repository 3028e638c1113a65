"""Contract of release with a preview (issue 17 §4): before a commander releases an alert to
the public, the console shows exactly what the public will receive and the audience; the
release command carries the hash of what was shown and is refused (409 `content_changed`) if
the content changed since.

Notify renders the public content (it holds the report); dispatch asks notify for the preview
over HTTP (`NOTIFY_PREVIEW_PATH`, the commander's bearer forwarded) both to show it and, at
release, to compare hashes. Both sides hash with `content_hash`, so they agree on what
"the same content" means: the public push body without the fields that change on every
rendering (`issued_at`, `version`, `msg_type`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, Field

NOTIFY_PREVIEW_PATH = "/api/v1/cases/{case_id}/public-preview"
CONTENT_CHANGED = "content_changed"  # error code of the 409
VOLATILE = ("issued_at", "version", "msg_type")


def content_hash(public_body: dict[str, Any]) -> str:
    """`sha256:<hex>` of the canonical JSON (sorted keys, UTF-8) of the public push body
    without its VOLATILE fields."""
    content = {k: v for k, v in public_body.items() if k not in VOLATILE}
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class ReleasePreview(BaseModel):
    """What the public will receive if the case is released now (`action` release), or what
    every recipient so far will receive if the search ends now (`action` cancel: the Cancel)."""

    case_id: str
    action: Literal["release", "cancel"] = "release"
    content_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    text: str = Field(description="the public push text (SMS/chat, CAP description)")
    cap_url: str = Field(description="the public CAP message as it would read after release")
    poster_url: str = Field(description="the A4 poster, available once released")
    audience: dict[str, int] = Field(
        description="release: recipients within the current radius by kind (hub, media, "
        "volunteer); cancel: everyone who received the alert, by kind (and member)")
    radius_km: float
    short_code: str


class ReleaseRequest(BaseModel):
    content_hash: str = Field(pattern=r"^sha256:[0-9a-f]{64}$",
                              description="the content_hash of the preview the commander saw")
