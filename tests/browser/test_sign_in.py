"""Signing in as a person (issue 20), in a real browser: the consoles send whoever has no
session to Keycloak's login page and back (authorization code + PKCE, oidc-client-ts); an
operator signs in with a sample account and files a report; a commander signed in to the
console sees it live; signing out ends the session, at the provider too."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from deploy.local.keycloak import SAMPLE_PASSWORD, KeycloakServer
from deploy.local.stack import KafkaServer, RedisServer, ServiceProcess, free_port, start_services
from tests.browser.conftest import screenshot
from tests.browser.test_intake_form import fill_report

LOGIN_PAGE = re.compile(r"/realms/homeward/protocol/openid-connect/auth\?")


@pytest.fixture(scope="module")
def oidc_stack(kafka: KafkaServer, redis_server: RedisServer, data_dir: Path,
               keycloak: KeycloakServer) -> Iterator[dict[str, ServiceProcess]]:
    """The three services trusting the provider (the consoles then sign people in there)."""
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    procs = start_services(kafka.bootstrap, redis_server.url, data_dir / "browser-oidc", ports,
                           {"HOMEWARD_OIDC_ISSUER": keycloak.issuer})
    yield procs
    for proc in procs.values():
        proc.stop()


def sign_in_at_provider(page: Page, url: str, username: str) -> None:
    """Open a console without a session: the provider's login page, then back, signed in."""
    page.goto(url)
    expect(page).to_have_url(LOGIN_PAGE, timeout=20_000)
    assert "code_challenge_method=S256" in page.url, "PKCE"
    expect(page.locator("#username")).to_be_visible(timeout=20_000)
    page.fill("#username", username)
    page.fill("#password", SAMPLE_PASSWORD)
    page.click("#kc-login")
    expect(page).to_have_url(url, timeout=20_000)  # back, and the code is gone from the URL
    expect(page.locator("#signout")).to_be_visible(timeout=20_000)


def test_operator_and_commander_sign_in_file_see_live_and_sign_out(
    browser: Browser, page: Page, oidc_stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch = oidc_stack["alert"].url, oidc_stack["dispatch"].url

    # The commander: a browser of their own (no shared session), on the console.
    commander = browser.new_context(locale="zh-CN").new_page()
    sign_in_at_provider(commander, f"{dispatch}/console", "commander-140400")
    # Who is signed in: name, role, region (from the provider's token).
    expect(commander.locator("#who")).to_have_text(
        "指挥员 长治 · 角色 指挥员 (commander) · 辖区 140400")
    expect(commander.locator("#live")).to_have_text("● 实时", timeout=15_000)
    expect(commander.locator("#token")).to_be_hidden()  # no pasted tokens with a provider

    # The operator signs in at the intake form and files.
    sign_in_at_provider(page, f"{alert}/intake", "operator-140403")
    expect(page.locator("#who")).to_have_text("接警员 潞州 · 角色 接警员 (operator) · 辖区 140403")
    screenshot(page, "oidc-intake-signed-in")
    fill_report(page, "赵小安", phone="13922223333")
    page.click("#submit")
    case_number = page.locator("#case-no")
    expect(case_number).to_have_text(re.compile(r"^140403-"), timeout=15_000)
    case_id = case_number.inner_text().strip()

    # The commander sees it live, without reloading.
    row = commander.locator(f"#case-list li[data-case='{case_id}']")
    expect(row).to_be_visible(timeout=15_000)
    screenshot(commander, "oidc-console-live")

    # The session ends (as when the provider refuses a renewal): the live stream closes, the
    # console hides the board and asks for a sign-in; the provider's session brings it back.
    assert commander.evaluate("() => HW.streams.size") == 1
    commander.evaluate("() => HW.session.ended()")
    assert commander.evaluate("() => HW.streams.size") == 0
    assert commander.evaluate("() => HW.token") == ""
    expect(commander.locator("#board")).to_be_hidden()
    expect(commander.locator("#token-error")).to_have_text("登录已失效，请重新登录")
    commander.click("#signin-btn")
    expect(commander.locator("#board")).to_be_visible(timeout=20_000)
    expect(commander.locator("#live")).to_have_text("● 实时", timeout=15_000)

    # Signing out ends the session here and at the provider: the console asks for a login.
    commander.click("#signout")
    expect(commander).to_have_url(LOGIN_PAGE, timeout=20_000)
    expect(commander.locator("#username")).to_be_visible()
    commander.goto(f"{dispatch}/console")  # no session left anywhere to come back with
    expect(commander).to_have_url(LOGIN_PAGE, timeout=20_000)
    commander.context.close()


@contextlib.contextmanager
def console_tokens_living(keycloak: KeycloakServer, seconds: int) -> Iterator[None]:
    """The console client's access tokens live `seconds` inside the block (the console renews
    a minute before expiry), then the realm's lifetime again."""
    (client,) = keycloak.admin("GET", "/homeward/clients?clientId=homeward-console")
    attributes = dict(client.get("attributes") or {})
    path = f"/homeward/clients/{client['id']}"
    keycloak.admin("PUT", path, {**client, "attributes": {
        **attributes, "access.token.lifespan": str(seconds)}})
    try:
        yield
    finally:
        keycloak.admin("PUT", path, {**client, "attributes": attributes})


def test_the_console_renews_its_token_before_it_expires(
    browser: Browser, oidc_stack: dict[str, ServiceProcess], keycloak: KeycloakServer,
) -> None:
    """Tokens of the console client live 70 s for this test: a minute before expiry the
    console has a new one (refresh token), and its live stream stays up."""
    with console_tokens_living(keycloak, 70):
        page = browser.new_context(locale="zh-CN").new_page()
        sign_in_at_provider(page, f"{oidc_stack['dispatch'].url}/console", "commander-140400")
        expect(page.locator("#live")).to_have_text("● 实时", timeout=15_000)
        first = page.evaluate("() => HW.token")
        lifetime = page.evaluate("() => HW.claims().exp - HW.claims().iat")
        assert lifetime == 70
        page.wait_for_function("(old) => HW.token && HW.token !== old", arg=first,
                               timeout=45_000)
        assert page.evaluate("() => HW.claims().exp") > page.evaluate(
            "(t) => JSON.parse(atob(t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).exp",
            first)
        assert page.evaluate("() => HW.streams.size") == 1
        expect(page.locator("#live")).to_have_text("● 实时")
        page.context.close()


def test_a_disabled_commanders_console_closes_its_live_stream(
    browser: Browser, oidc_stack: dict[str, ServiceProcess], keycloak: KeycloakServer,
) -> None:
    """Disabled at the provider while the console is open: the next renewal (10 s after
    sign-in with 70 s tokens) is refused, and the console ends the session at once: the live
    stream closes, the token is forgotten, the board is hidden."""
    username = f"commander-leaver-{time.time_ns()}"
    user = keycloak.admin("GET", "/homeward/users/" + keycloak.add_person(
        username, "commander", "140400"))
    try:
        with console_tokens_living(keycloak, 70):
            page = browser.new_context(locale="zh-CN").new_page()
            sign_in_at_provider(page, f"{oidc_stack['dispatch'].url}/console", username)
            expect(page.locator("#live")).to_have_text("● 实时", timeout=15_000)
            assert page.evaluate("() => HW.streams.size") == 1
            expires = page.evaluate("() => HW.claims().exp")
            keycloak.admin("PUT", f"/homeward/users/{user['id']}", {**user, "enabled": False})
            page.wait_for_function("() => HW.streams.size === 0", timeout=30_000)
            assert page.evaluate("() => HW.token") == ""
            assert expires - time.time() > 20, "closed on the refusal, not at expiry"
            expect(page.locator("#board")).to_be_hidden()
            expect(page.locator("#token-error")).to_have_text("登录已失效，请重新登录")
            page.context.close()
    finally:
        keycloak.admin("DELETE", f"/homeward/users/{user['id']}")
