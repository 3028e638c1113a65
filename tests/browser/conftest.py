"""Browser tests: Playwright driving Debian's Chromium (no browser download), headless,
against the three services started as processes on real Kafka and Redis."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from shared.kafka import ensure_topics
from tests.conftest import ARTIFACTS
from tests.helpers import run_sync

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    # A browser in another zone than the deployment's: consoles must show the deployment's.
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                  timezone_id="America/New_York")
    page = context.new_page()
    # Chromium reports whatever the Content-Security-Policy blocked on the console (issue 12):
    # a console that needs something the policy forbids fails its test.
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)
    yield page
    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{request.node.name}-end.png"), full_page=True)
    context.close()
    assert blocked == [], blocked


@pytest.fixture(scope="session")
def kafka(data_dir: Path) -> Iterator[KafkaServer]:
    """The browser tests' own broker (overrides the session one): notify rebuilds its hubs from
    the subscriber log after the earlier tests flushed Redis, and the hubs every earlier test
    registered must not stand between a page and its push."""
    server = KafkaServer(data_dir / "browser-kafka", port=free_port()).start()
    run_sync(ensure_topics(server.bootstrap))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(data_dir: Path) -> Iterator[RedisServer]:
    server = RedisServer(data_dir / "browser-redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(kafka: KafkaServer, redis_server: RedisServer,
          data_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "browser", ports)
    yield procs
    for proc in procs.values():
        proc.stop()


def screenshot(page: Page, name: str) -> None:
    shots = ARTIFACTS / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
