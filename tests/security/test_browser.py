"""Issue 12, "Browser": the consoles send a Content-Security-Policy without inline script,
frame-ancestors 'none', nosniff and a Referrer-Policy; /metrics, /docs and /openapi.json are
served on the internal ops port only."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from deploy.local.stack import ServiceProcess

pytestmark = pytest.mark.e2e

PAGES = {
    "alert": ["/intake"],
    "dispatch": ["/console", "/console/config.js"],
    "notify": ["/hub", "/hub/config.js"],
}
ASSETS = ["/static/shared/common.js", "/static/shared/common.css"]


class Scripts(HTMLParser):
    """Inline scripts and inline event handlers of a page (both need 'unsafe-inline')."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self._in_inline_script = True
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}=…>")

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.inline.append(data.strip()[:60])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.parametrize("service", sorted(PAGES))
async def test_consoles_send_csp_and_browser_headers(
    service: str, security_stack: dict[str, ServiceProcess],
) -> None:
    base = security_stack[service].url
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for path in [*PAGES[service], *ASSETS, "/api/v1/nothing-here"]:
            got = await http.get(path)
            assert got.status_code in (200, 401, 404), path
            csp = directives(got.headers.get("content-security-policy", ""))
            assert csp.get("frame-ancestors") == ["'none'"], path
            assert csp.get("script-src") == ["'self'"], path  # no inline, no eval, no CDN
            assert csp.get("object-src") == ["'none'"], path
            assert all("'unsafe-inline'" not in words for words in csp.values()), path
            assert got.headers.get("x-content-type-options") == "nosniff", path
            assert got.headers.get("referrer-policy") == "no-referrer", path
            assert got.headers.get("x-frame-options") == "DENY", path
            if got.headers.get("content-type", "").startswith("text/html"):
                parser = Scripts()
                parser.feed(got.text)
                assert parser.inline == [], (path, parser.inline)
                for src in re.findall(r'<script[^>]+src="([^"]+)"', got.text):
                    assert src.startswith("/"), src  # served by the service itself


@pytest.mark.parametrize("service", ["alert", "dispatch", "notify"])
async def test_metrics_and_docs_only_on_the_internal_port(
    service: str, security_stack: dict[str, ServiceProcess],
) -> None:
    proc = security_stack[service]
    assert proc.ops_port and proc.ops_port != proc.port
    async with httpx.AsyncClient(timeout=10) as http:
        for path in ("/metrics", "/docs", "/openapi.json", "/redoc"):
            assert (await http.get(proc.url + path)).status_code == 404, path
        metrics = await http.get(proc.ops_url + "/metrics")
        assert metrics.status_code == 200 and "process_" in metrics.text
        schema = await http.get(proc.ops_url + "/openapi.json")
        assert schema.status_code == 200 and "/api/v1/" in schema.text
        assert (await http.get(proc.ops_url + "/docs")).status_code == 200
