"""The child's photo for the poster (issue 17 §3), fetched only from the platform's own photo
store (the alert service's `/photos/{name}`, Settings.alert_url): a URL anywhere else is not
fetched, so the poster cannot be made to request arbitrary addresses. Bounded in time and size;
any failure prints the poster without the photo."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
TYPES = {"image/jpeg", "image/png", "image/webp"}


class PhotoSource:
    def __init__(self, alert_url: str, timeout_s: float = 5.0) -> None:
        self.prefix = alert_url.rstrip("/") + "/photos/"
        self.timeout = timeout_s

    def ours(self, url: str) -> bool:
        rest = url.removeprefix(self.prefix)
        return url.startswith(self.prefix) and "/" not in rest and ".." not in rest

    async def first(self, urls: list[str]) -> bytes | None:
        """The first of `urls` served by the photo store, or None."""
        for url in urls:
            if not self.ours(url):
                continue
            try:
                async with httpx.AsyncClient(timeout=self.timeout,
                                             follow_redirects=False) as client:
                    got = await client.get(url)
            except httpx.HTTPError as exc:
                log.warning("poster photo %s: %r", url, exc)
                continue
            kind = got.headers.get("content-type", "").split(";")[0].strip()
            if got.status_code == 200 and kind in TYPES and len(got.content) <= MAX_BYTES:
                return got.content
        return None
