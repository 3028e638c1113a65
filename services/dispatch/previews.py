"""Release previews from notify (issue 17 §4), over HTTP: notify holds the report and renders
what the public receives; dispatch shows it to the commander and, at release, checks that the
content still hashes to what was shown (shared.release). The commander's bearer token is
forwarded, so notify applies the same region scope."""

from __future__ import annotations

import httpx

from shared.release import NOTIFY_PREVIEW_PATH, ReleasePreview


class PreviewUnavailable(RuntimeError):
    """Notify could not give a preview: `status` 503 when unreachable or failing, 409 when it
    has no alert to release (not yet heard of the report, or the search has ended)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotifyPreviews:
    def __init__(self, notify_url: str, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base = notify_url.rstrip("/")
        self.timeout = timeout_s
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, transport=self.transport,
                                             follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def get(self, case_id: str, authorization: str,
                  outcome: str | None = None) -> ReleasePreview:
        """The release preview; with `outcome`, the Cancel's (what ending the search sends)."""
        url = self.base + NOTIFY_PREVIEW_PATH.format(case_id=case_id)
        params = {"action": "cancel", "outcome": outcome} if outcome else None
        try:
            got = await self.client().get(url, params=params,
                                          headers={"Authorization": authorization})
        except httpx.HTTPError as exc:
            raise PreviewUnavailable(503, f"notify unreachable: {type(exc).__name__}") from exc
        if got.status_code in (404, 409):
            raise PreviewUnavailable(409, "notify has no alert of this case to release yet "
                                          "(or the search has ended)")
        if got.status_code != 200:
            raise PreviewUnavailable(503, f"notify answered HTTP {got.status_code}")
        return ReleasePreview.model_validate_json(got.content)
