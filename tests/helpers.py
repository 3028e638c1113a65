"""Test helpers: report bodies, a local webhook sink, Kafka reading, polling."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from shared.kafka_access import KafkaAccess
from shared.kafka_log import read_to_end

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where a loop is already running
    (Playwright's sync API keeps one): in a worker thread with a loop of its own."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def report_body(**overrides: Any) -> dict[str, Any]:
    """The DESIGN.md example report, last seen 10 minutes ago."""
    seen = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    body: dict[str, Any] = {
        "child": {"name": "张小明", "sex": "male", "birth_date": "2019-05-01", "height_cm": 115,
                  "description": "蓝色羽绒服，黑色运动鞋", "photo_urls": ["https://example.org/p.jpg"]},
        "last_seen": {"at": seen, "address": "山西省长治市潞州区英雄南路",
                      "region_code": "140403", "lat": 36.19, "lon": 113.11},
        "circumstances": {"kind": "suspected_abduction", "suspect": "中年男子",
                          "vehicle": "晋D·12345"},
        "reporter": {"name": "李红", "phone": "13800000000", "relation": "mother"},
        "release": {"public": False},
        "exercise": False,
    }
    for dotted, value in overrides.items():
        target = body
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return body


def another_child() -> dict[str, Any]:
    """Overrides of `report_body` that make its child a child of its own (a birth date no other
    report shares, the name kept): reports of the same name and birth date are one child and
    share one case group and one alert (shared/identity.py)."""
    born = datetime(2012, 1, 1) + timedelta(days=uuid.uuid4().int % 4000)
    return {"child__birth_date": born.date().isoformat()}


class WebhookSink:
    """A local HTTP endpoint that records every request (headers and raw body)."""

    def __init__(self, status: int = 204) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                sink.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                      "body": body, "at": time.time()})
                self.send_response(sink.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 20,
                     interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with the last value on timeout."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def _json_or_none(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


async def read_topic(bootstrap: str, topic: str, timeout: float = 60,
                     access: KafkaAccess | None = None) -> list[dict[str, Any]]:
    """Every message on `topic` from its beginning up to its end at call time, as {key,
    headers, value, raw} dicts (`access`: a principal on a SASL cluster). Read without a
    consumer group by `shared.kafka_log.read_to_end`, so it never stops short: late in the
    suite the shared topics hold tens of thousands of messages, and a read that ended at the
    first empty poll or after a few seconds returned some of them (a flaky "missing" message).
    Raises TimeoutError when the end is not reached within `timeout` seconds."""
    out: list[dict[str, Any]] = []
    async for r in read_to_end(access or bootstrap, topic, timeout_s=timeout, client="test"):
        out.append({
            "key": r.key.decode() if r.key else None,
            "headers": {k: v.decode() for k, v in r.headers},
            "value": _json_or_none(r.value),
            "raw": r.value,
        })
    return out


def log_lines(path: Path, words: set[str], keep: int = 40) -> str:
    """The last `keep` lines of the log at `path` naming any of `words` (or its tail): what a
    failing end-to-end test shows of a service."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    hits = [line for line in lines if any(w in line for w in words)] or lines
    return "\n".join(hits[-keep:])


def ids_per_case(events: list[dict[str, Any]], ce_type: str,
                 cases: set[str]) -> dict[str, set[str]]:
    """The distinct ce_ids of `ce_type` per case among `events` (as read_topic returns them),
    for `cases` only: one id per case means no distinct duplicate, however often resent."""
    out: dict[str, set[str]] = {}
    for e in events:
        value = e["value"]
        if e["headers"].get("ce_type") == ce_type and isinstance(value, dict) and \
                value.get("case_id") in cases:
            out.setdefault(value["case_id"], set()).add(e["headers"]["ce_id"])
    return out


async def unsealed(settings: Any, data: dict[str, Any]) -> dict[str, Any]:
    """`data` of a raw topic record with its sealed personal fields opened by the case's key
    (issue 13; markers once the case was purged)."""
    from redis.asyncio import Redis

    from shared.casekeys import CaseKeys, opened_data
    from shared.pii import MasterKeys

    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    keys = CaseKeys(redis, settings.kafka_bootstrap, MasterKeys.parse(settings.pii_master_keys))
    try:
        return await opened_data(keys, data)
    finally:
        await keys.stop()
        await redis.aclose()
class ProviderTokens:
    """Access tokens of the local realm's sample accounts (`<role>-<region>`, password grant of
    the development client), kept until half a minute before they expire (issue 20)."""

    def __init__(self, keycloak: Any) -> None:
        self.keycloak = keycloak
        self._tokens: dict[str, tuple[str, float]] = {}

    def __call__(self, role: str, region: str, hub_id: str | None = None) -> str:
        """The token of the sample account for `role` in `region` (its hub is the realm's:
        `hub_id` is not the provider's to choose)."""
        username = f"{role}-{region}"
        token, expires = self._tokens.get(username, ("", 0.0))
        if expires - time.time() < 30:
            answer = self.keycloak.password_token(username)
            token, expires = answer["access_token"], time.time() + answer["expires_in"]
            self._tokens[username] = (token, expires)
        return token


@contextlib.asynccontextmanager
async def redis_refusing_writes(url: str) -> AsyncIterator[None]:
    """Redis at `maxmemory 1mb` with `noeviction` (every write answers OOM) inside the block,
    restored after it. If Redis holds under 1 MB, filler keys take it past (removed after)."""
    from redis.asyncio import Redis
    from redis.exceptions import OutOfMemoryError

    redis = Redis.from_url(url, decode_responses=True)
    filler: list[str] = []
    try:
        await redis.config_set("maxmemory-policy", "noeviction")
        await redis.config_set("maxmemory", "1mb")
        for n in range(64):
            try:
                key = f"test:oom-filler:{uuid.uuid4().hex}:{n}"
                await redis.set(key, "x" * 65_536)
                filler.append(key)
            except OutOfMemoryError:
                break
        else:
            raise AssertionError("Redis did not refuse writes at maxmemory 1mb")
        yield
    finally:
        await redis.config_set("maxmemory", "0")
        if filler:
            await redis.delete(*filler)
        await redis.aclose()


def pdf_text(pdf: bytes, workdir: Path) -> str:
    """The text of a PDF as poppler's pdftotext reads it."""
    path = workdir / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def pdf_qr_codes(pdf: bytes, workdir: Path) -> list[str]:
    """What the barcodes on the PDF's first page say: rendered to PNG by poppler's pdftoppm
    (150 dpi), decoded with zxing-cpp."""
    import zxingcpp
    from PIL import Image

    path = workdir / "doc.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "150", "-singlefile", str(path),
                    str(workdir / "page")], check=True)
    return [b.text for b in zxingcpp.read_barcodes(Image.open(workdir / "page.png"))]


def id_number(first17: str) -> str:
    """A 居民身份证号 with its GB 11643 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights,
                                                                     strict=True)) % 11]
