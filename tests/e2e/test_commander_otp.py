"""A second factor for commanders by a realm setting (issue 20), against the real Keycloak: with
the realm's browser flow switched to deploy/keycloak/realm-homeward.json's "homeward browser"
(`HOMEWARD_KEYCLOAK_COMMANDER_OTP=1` for `make up`), a commander who has no one-time code is
made to set one up before any code is issued, and is asked for it at every later sign-in; an
operator signs in with the password alone. With the switch off, a commander is not asked.

The password grant does not run the browser flow, so these tests walk the provider's login pages
over HTTP like a browser: authorization request (code + PKCE, the console's client), the login
form, the TOTP set-up or one-time-code form, then the code exchanged at the token endpoint. The
one-time codes are RFC 6238 TOTP (the realm's policy: HMAC-SHA1, 6 digits, 30 s) computed with
`cryptography`'s TOTP from the secret the set-up page hands out."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from deploy.keycloak.realm import production_realm
from deploy.local.keycloak import REALM, SAMPLE_PASSWORD, KeycloakServer
from shared.auth import Role, verify_token_with_expiry
from shared.settings import Settings

pytestmark = pytest.mark.e2e

CLIENT = "homeward-console"
REDIRECT = "http://127.0.0.1:9/console"  # never opened: the code is read from the redirect
OTP_PERIOD_S = 30


class _Forms(HTMLParser):
    """Every <form> of a page: id -> (action, {input name: value}); and the messages the page
    shows a person (a field's error, the feedback banner), so a refused step says why."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, tuple[str, dict[str, str]]] = {}
        self.messages: list[str] = []
        self._open: str | None = None
        self._message_depth = 0  # > 0 inside a message element (its nesting depth)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if self._message_depth:
            self._message_depth += 1
        elif (attr.get("id", "").startswith("input-error")
              or "kc-feedback-text" in attr.get("class", "")):
            self._message_depth = 1
            self.messages.append("")
        if tag == "form":
            self._open = attr.get("id") or f"form-{len(self.forms)}"
            self.forms[self._open] = (attr.get("action", ""), {})
        elif tag == "input" and self._open and attr.get("name"):
            self.forms[self._open][1][attr["name"]] = attr.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._message_depth:
            self.messages[-1] = " ".join(f"{self.messages[-1]} {data}".split())

    def handle_endtag(self, tag: str) -> None:
        if self._message_depth:
            self._message_depth -= 1
        if tag == "form":
            self._open = None


def forms_of(page: str) -> _Forms:
    parser = _Forms()
    parser.feed(page)
    return parser


@dataclass
class Step:
    """Where the login pages are: a form to fill (`form` id) or the code for the console."""

    form: str = ""
    action: str = ""
    inputs: dict[str, str] | None = None
    code: str = ""
    error: str = ""
    page: str = ""  # a page without a form: the provider's error page
    message: str = ""  # what the form's page tells the person (e.g. why a code was refused)


class BrowserSignIn:
    """One person's sign-in at the console client, as a browser makes it (its own cookies)."""

    def __init__(self, keycloak: KeycloakServer, realm: str = REALM,
                 redirect: str = REDIRECT) -> None:
        self.issuer = f"{keycloak.url}/realms/{realm}"
        self.redirect = redirect
        self.http = httpx.Client(timeout=20)
        self.verifier = secrets.token_urlsafe(48)

    def _unsecure_cookies(self) -> None:
        # Keycloak's session cookies are `Secure`; browsers send those to http://127.0.0.1 (a
        # secure context), Python's cookie jar only over https.
        for cookie in self.http.cookies.jar:
            cookie.secure = False

    def _follow(self, response: httpx.Response) -> Step:
        while response.is_redirect:
            location = response.headers["location"]
            if location.startswith(self.redirect):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
                return Step(code=query.get("code", [""])[0], error=query.get("error", [""])[0])
            self._unsecure_cookies()
            response = self.http.get(location)
        self._unsecure_cookies()
        assert response.status_code in (200, 400), response.text[:500]
        found = forms_of(response.text)
        if not found.forms:
            return Step(page=response.text)
        form, (action, inputs) = next(iter(found.forms.items()))
        return Step(form=form, action=action, inputs=inputs,
                    message=" | ".join(m for m in found.messages if m))

    def start(self) -> Step:
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        return self._follow(self.http.get(
            f"{self.issuer}/protocol/openid-connect/auth",
            params={"client_id": CLIENT, "redirect_uri": self.redirect, "response_type": "code",
                    "scope": "openid", "state": secrets.token_urlsafe(8),
                    "code_challenge": challenge, "code_challenge_method": "S256"}))

    def submit(self, step: Step, **fields: str) -> Step:
        assert step.action, step
        return self._follow(self.http.post(step.action, data={**(step.inputs or {}), **fields}))

    def password(self, username: str) -> Step:
        login = self.start()
        assert login.form == "kc-form-login", login
        return self.submit(login, username=username, password=SAMPLE_PASSWORD)

    def token(self, step: Step) -> dict[str, Any]:
        """The console's token answer for the code (PKCE verifier of this sign-in)."""
        assert step.code, step
        answer = self.http.post(f"{self.issuer}/protocol/openid-connect/token", data={
            "grant_type": "authorization_code", "client_id": CLIENT, "code": step.code,
            "redirect_uri": self.redirect, "code_verifier": self.verifier})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def one_time_code(secret: str, at: float) -> str:
    """RFC 6238 at `at` (Unix s) for the secret Keycloak's set-up form carries (its raw bytes
    are the HMAC key; the QR code / manual key is their base32)."""
    return TOTP(secret.encode(), 6, SHA1(), OTP_PERIOD_S, enforce_key_length=False).generate(
        at).decode()


def period_of(at: float) -> int:
    """The RFC 6238 time step of `at` (Unix s)."""
    return int(at // OTP_PERIOD_S)


def unused_code(secret: str, used: int) -> str:
    """The code the phone shows now; the next period's when now's period is `used` (a code is
    good once; the realm accepts one period of drift). Taken when it is sent, so a slow
    machine between two sign-ins cannot make it stale."""
    period = max(period_of(time.time()), used + 1)
    return one_time_code(secret, period * OTP_PERIOD_S)


@pytest.fixture
def commander_otp(keycloak: KeycloakServer) -> Iterator[KeycloakServer]:
    """The realm with the switch on for one test, then back (the session's other tests sign
    commanders in without a code)."""
    keycloak.require_commander_otp(True)
    try:
        yield keycloak
    finally:
        keycloak.require_commander_otp(False)


@pytest.fixture
def new_commander(keycloak: KeycloakServer) -> Iterator[str]:
    """A commander of 140400 made for one test (it keeps the OTP it sets up), removed after."""
    username = f"commander-otp-{time.time_ns()}"
    user = keycloak.add_person(username, Role.commander.value, "140400")
    yield username
    keycloak.admin("DELETE", f"/{REALM}/users/{user}")


def user_id(keycloak: KeycloakServer, username: str) -> str:
    (user,) = keycloak.admin("GET", f"/homeward/users?exact=true&username={username}")
    return str(user["id"])


def failures_recorded(keycloak: KeycloakServer, username: str, count: int,
                      timeout_s: float = 20.0) -> None:
    """Wait until the realm's brute-force detector has recorded `count` failed sign-ins of
    `username`. Keycloak records a failure after the answer, in the background, and refuses
    the person's next attempt while it is still being recorded (Keycloak 26: "concurrent login
    requests are blocked by default when brute force is enabled", its upgrading guide): a
    person takes that long to type the next code, a test does not."""
    path = f"/{REALM}/attack-detection/brute-force/users/{user_id(keycloak, username)}"
    deadline = time.monotonic() + timeout_s
    while (seen := keycloak.admin("GET", path)).get("numFailures", 0) < count:
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)


def another_code(code: str) -> str:
    """A six-digit code that is not `code`."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def signed_in_as(keycloak: KeycloakServer, answer: dict[str, Any]) -> tuple[str, str]:
    who, _ = verify_token_with_expiry(Settings(oidc_issuer=keycloak.issuer),
                                      answer["access_token"])
    return who.role.value, who.region


def test_a_commander_sets_up_otp_then_is_asked_for_it_and_an_operator_is_not(
    commander_otp: KeycloakServer, new_commander: str,
) -> None:
    keycloak = commander_otp

    # First sign-in: the password is not enough; the provider makes the commander set up OTP.
    first = BrowserSignIn(keycloak)
    setup = first.password(new_commander)
    assert not setup.code and setup.form == "kc-totp-settings-form", setup
    secret = (setup.inputs or {})["totpSecret"]
    wrong = first.submit(setup, totp=another_code(one_time_code(secret, time.time())))
    assert not wrong.code and wrong.form == "kc-totp-settings-form", "a wrong code is refused"
    assert (wrong.inputs or {})["totpSecret"] == secret
    now = time.time()
    done = first.submit(wrong, totp=one_time_code(secret, now), userLabel="test phone")
    assert signed_in_as(keycloak, first.token(done)) == ("commander", "140400")
    used = period_of(now)
    (credential,) = [c for c in keycloak.admin(
        "GET", f"/homeward/users/{user_id(keycloak, new_commander)}/credentials")
        if c["type"] == "otp"]
    assert credential["userLabel"] == "test phone"

    # Every later sign-in: password, then the one-time code (not the one set-up used).
    later = BrowserSignIn(keycloak)
    ask = later.password(new_commander)
    assert not ask.code and ask.form == "kc-otp-login-form", ask
    refused = later.submit(ask, otp=another_code(unused_code(secret, used)))
    assert not refused.code and refused.form == "kc-otp-login-form", "a wrong code is refused"
    assert refused.message, refused  # and the page says so
    failures_recorded(keycloak, new_commander, 1)
    done = later.submit(refused, otp=unused_code(secret, used))
    assert signed_in_as(keycloak, later.token(done)) == ("commander", "140400")

    # An operator is not asked: the password brings the code.
    operator = BrowserSignIn(keycloak)
    straight = operator.password("operator-140403")
    assert straight.code, straight
    assert signed_in_as(keycloak, operator.token(straight)) == ("operator", "140403")


def test_without_the_switch_a_commander_signs_in_with_the_password(
    keycloak: KeycloakServer,
) -> None:
    """The default local realm (the browser tests' sign-ins): Keycloak's built-in flow."""
    assert keycloak.admin("GET", "/homeward")["browserFlow"] == "browser"
    person = BrowserSignIn(keycloak)
    straight = person.password("commander-140403")
    assert straight.code, straight
    assert signed_in_as(keycloak, person.token(straight)) == ("commander", "140403")



PUBLIC = {"HOMEWARD_ALERT_URL": "https://alert.example.org",
          "HOMEWARD_DISPATCH_URL": "https://dispatch.example.org",
          "HOMEWARD_NOTIFY_URL": "https://notify.example.org",
          "HOMEWARD_CALLCENTRE_REGION": "320100"}


def as_keycloak_imports_it(realm: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """The realm after Keycloak's start-up import fills its `${VAR}` placeholders from the
    environment (unknown names stay as they are, as Keycloak leaves them)."""
    text = re.sub(r"\$\{([A-Z][A-Z0-9_]*)\}", lambda m: environ.get(m[1], m[0]),
                  json.dumps(realm, ensure_ascii=False))
    assert "${HOMEWARD_" not in text
    return dict(json.loads(text))


@pytest.fixture
def production(keycloak: KeycloakServer) -> Iterator[str]:
    """The Kubernetes realm (deploy/k8s/base/realm-homeward.json) in the session's Keycloak
    under another name, removed after."""
    name = f"homeward-production-{time.time_ns()}"
    keycloak.import_realm(as_keycloak_imports_it(production_realm(), PUBLIC) | {"realm": name})
    yield name
    keycloak.admin("DELETE", f"/{name}")


def test_the_production_realm_has_no_local_accounts_and_demands_otp_of_commanders(
    keycloak: KeycloakServer, production: str,
) -> None:
    assert keycloak.admin("GET", f"/{production}/users") == [], "no people"
    with pytest.raises(urllib.error.HTTPError) as no_client:  # the password-grant client
        keycloak.password_token("operator-140403", realm=production)
    assert no_client.value.code in (400, 401)

    # The call-centre system: client credentials with the secret Keycloak made, the region of
    # its deployment.
    (client,) = keycloak.admin("GET", f"/{production}/clients?clientId=homeward-callcentre")
    secret = keycloak.admin("GET", f"/{production}/clients/{client['id']}/client-secret")
    assert secret["value"] and secret["value"] != "homeward-callcentre-local-only"
    answer = httpx.post(f"{keycloak.url}/realms/{production}/protocol/openid-connect/token",
                        data={"grant_type": "client_credentials",
                              "client_id": "homeward-callcentre",
                              "client_secret": secret["value"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert ("operator" in claims["roles"], claims["region"]) == (True, "320100")

    # The console sends people back to its public page only; a commander must set up OTP.
    commander = f"commander-{time.time_ns()}"
    keycloak.add_person(commander, Role.commander.value, "140400", realm=production)
    console = f"{PUBLIC['HOMEWARD_DISPATCH_URL']}/console"
    setup = BrowserSignIn(keycloak, production, redirect=console).password(commander)
    assert not setup.code and setup.form == "kc-totp-settings-form", setup
    elsewhere = BrowserSignIn(keycloak, production, redirect=REDIRECT).start()
    assert not elsewhere.form and "redirect_uri" in elsewhere.page, "loopback is refused"
