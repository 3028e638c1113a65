"""Keycloak, the identity provider of the local stack and the tests (issue 20).

The server distribution `org.keycloak:keycloak-quarkus-dist` (version pinned in
deploy/keycloak/pom.xml) is fetched from Maven Central once and unpacked into the cache, like
the Kafka jars. It runs on the Temurin 25 JDK (Keycloak needs Java 21 or newer; the machine's
default java is 17) in development mode with an in-memory database: every start is the realm of
deploy/keycloak/realm-homeward.json exactly, imported through the admin API by a temporary
bootstrap administrator whose random password only this process knows.

    python -m deploy.local.keycloak fetch     # what `make install` runs
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.keycloak.realm import BROWSER_FLOW, COMMANDER_OTP_FLOW, LOCAL_REALM_FILE

ROOT = Path(__file__).resolve().parents[2]
POM = ROOT / "deploy" / "keycloak" / "pom.xml"
REALM_FILE = LOCAL_REALM_FILE
REALM = "homeward"
DEFAULT_CACHE = Path(os.environ.get("HOMEWARD_CACHE_DIR", Path.home() / ".cache" / "homeward"))
JAVA_HOME = Path(os.environ.get("HOMEWARD_KEYCLOAK_JAVA_HOME",
                                "/usr/lib/jvm/temurin-25-jdk-amd64"))
DEFAULT_PORT = 8180
SAMPLE_PASSWORD = "homeward-dev"  # local realm only (README)
# The realm's browser flow is its second-factor switch: Keycloak's built-in BROWSER_FLOW asks for a
# one-time code only of accounts that set one up; the realm file's COMMANDER_OTP_FLOW demands it
# of every commander (Condition - user role = commander, then OTP Form; a commander without OTP is
# made to set it up: required action CONFIGURE_TOTP) and of anyone else who has one.
COMMANDER_OTP_ENV = "HOMEWARD_KEYCLOAK_COMMANDER_OTP"


def commander_otp_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """HOMEWARD_KEYCLOAK_COMMANDER_OTP=1 (or true/yes/on): the local realm demands OTP of
    commanders (`make up`, `python -m deploy.local.stack up --commander-otp`)."""
    return environ.get(COMMANDER_OTP_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def keycloak_version() -> str:
    text = POM.read_text()
    start = text.index("<keycloak.version>") + len("<keycloak.version>")
    return text[start : text.index("</keycloak.version>")]


def ensure_keycloak(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The unpacked distribution (its home directory), fetched with Maven once."""
    version = keycloak_version()
    target = cache_dir / f"keycloak-dist-{version}"
    home = target / f"keycloak-{version}"
    marker = target / ".complete"
    if marker.exists():
        return home
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven is needed to fetch Keycloak (run `make install`)")
    partial = cache_dir / f".keycloak-dist-{version}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:unpack-dependencies",
         f"-DoutputDirectory={partial}",
         "-Dmdep.overWriteReleases=true"],  # unpack even where a marker says it was before
        check=True,
    )
    (partial / ".complete").touch()
    try:
        partial.rename(target)  # atomic: a concurrent fetch either wins or finds it complete
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
    return home


def _post_form(url: str, form: dict[str, str], timeout: float = 10) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data),
                                timeout=timeout) as resp:
        return dict(json.load(resp))


@dataclass
class KeycloakServer:
    """One Keycloak on 127.0.0.1:`port` with the `homeward` realm. `start()` returns at once;
    `wait_ready()` waits for the realm (so it can start beside Kafka)."""

    data_dir: Path
    port: int = DEFAULT_PORT
    management_port: int = 0
    heap: str = "512m"
    realm_file: Path = REALM_FILE
    commander_otp: bool = False  # HOMEWARD_KEYCLOAK_COMMANDER_OTP=1 (`make up`)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    ready_after_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/{REALM}"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def start(self) -> KeycloakServer:
        from deploy.local.stack import _die_with_parent, free_port

        home = ensure_keycloak()
        java = JAVA_HOME / "bin" / "java"
        if not java.exists():
            raise RuntimeError(f"Keycloak needs Java 21 or newer; {java} is missing "
                               "(set HOMEWARD_KEYCLOAK_JAVA_HOME)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.management_port:
            self.management_port = free_port()
        env = {
            **os.environ, "JAVA_HOME": str(JAVA_HOME),
            "JAVA_OPTS_KC_HEAP": f"-Xms128m -Xmx{self.heap}",
            "KC_BOOTSTRAP_ADMIN_USERNAME": "bootstrap-admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
            "HOMEWARD_KEYCLOAK_DATA": str(self.data_dir),  # who started it (leak checks)
        }
        log = (self.data_dir / "keycloak.log").open("ab")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [str(home / "bin" / "kc.sh"), "start-dev", "--db=dev-mem",
             "--http-host=127.0.0.1", f"--http-port={self.port}",
             f"--http-management-port={self.management_port}",
             f"--hostname={self.url}",  # the issuer every token names, whoever asks
             "--log-level=WARN,org.keycloak.services:INFO,io.quarkus:INFO"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = 240) -> KeycloakServer:
        """Wait for the server, then import the realm (admin API). Raises on a dead process
        or after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Keycloak exited with {self.proc.returncode}; see "
                                   f"{self.data_dir / 'keycloak.log'}")
            try:
                token = self.admin_token()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Keycloak not up after {timeout}s") from None
                time.sleep(0.5)
        realm = json.loads(self.realm_file.read_text(encoding="utf-8"))
        realm["browserFlow"] = COMMANDER_OTP_FLOW if self.commander_otp else BROWSER_FLOW
        self.import_realm(realm, token)
        self.ready_after_s = time.monotonic() - self.started_at
        return self

    def admin_token(self) -> str:
        """A master-realm token of the bootstrap administrator (admin REST API)."""
        answer = _post_form(f"{self.url}/realms/master/protocol/openid-connect/token", {
            "grant_type": "password", "client_id": "admin-cli",
            "username": "bootstrap-admin", "password": self.admin_password}, timeout=5)
        return str(answer["access_token"])

    def admin(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """Call the admin REST API (`/admin/realms...`); the JSON answer or None."""
        request = urllib.request.Request(
            f"{self.url}/admin/realms{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token or self.admin_token()}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def import_realm(self, realm: dict[str, Any], token: str | None = None) -> None:
        """Create the realm, replacing one of the same name (the file is the truth)."""
        try:
            self.admin("DELETE", f"/{realm['realm']}", token=token)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        self.admin("POST", "", realm, token=token)

    def add_person(self, username: str, role: str, region: str, realm: str = REALM) -> str:
        """A person made through the admin API (tests, local trials): enabled, password
        SAMPLE_PASSWORD, one realm role, a region. Returns the user id."""
        self.admin("POST", f"/{realm}/users", {
            "username": username, "enabled": True, "firstName": role, "lastName": username,
            "email": f"{username}@homeward.local", "emailVerified": True,
            "attributes": {"region": [region]},
            "credentials": [{"type": "password", "value": SAMPLE_PASSWORD, "temporary": False}]})
        (user,) = self.admin("GET", f"/{realm}/users?exact=true&username={username}")
        grant = self.admin("GET", f"/{realm}/roles/{role}")
        self.admin("POST", f"/{realm}/users/{user['id']}/role-mappings/realm", [grant])
        return str(user["id"])

    def require_commander_otp(self, required: bool, realm: str = REALM) -> None:
        """Switch the realm's browser flow at run time (admin API): `required` binds
        COMMANDER_OTP_FLOW, else Keycloak's built-in flow. Sign-ins already made keep their
        session; the next sign-in follows the new flow."""
        flow = COMMANDER_OTP_FLOW if required else BROWSER_FLOW
        self.admin("PUT", f"/{realm}", {"browserFlow": flow})
        self.commander_otp = required

    def password_token(self, username: str, password: str = SAMPLE_PASSWORD,
                       client_id: str = "homeward-dev", realm: str = REALM) -> dict[str, Any]:
        """The token answer for a person (development client, password grant). Raises
        urllib.error.HTTPError (400 invalid_grant: wrong password, disabled account)."""
        return _post_form(f"{self.url}/realms/{realm}/protocol/openid-connect/token", {
            "grant_type": "password", "client_id": client_id, "username": username,
            "password": password, "scope": "openid"})

    def stop(self) -> None:
        """SIGTERM to the process group (kc.sh and its JVM), SIGKILL after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


SAMPLE_ACCOUNTS = ("operator-140403", "commander-140400", "hub-140400", "admin-140000")


def describe(server: KeycloakServer, consoles: dict[str, str]) -> str:
    """What `make up` prints: where to sign in, and the sample accounts (local only)."""
    realm = json.loads(server.realm_file.read_text(encoding="utf-8"))
    users = {u["username"]: u for u in realm["users"]}
    otp = ("commanders must use a one-time code (OTP)" if server.commander_otp else
           "OTP for commanders off: HOMEWARD_KEYCLOAK_COMMANDER_OTP=1 turns it on")
    lines = [f"  Keycloak   {server.url}  (realm {REALM}, ready in {server.ready_after_s:.1f}s; "
             f"{otp})",
             "\nSign in (local realm only, password " + SAMPLE_PASSWORD + "):"]
    lines += [f"  {name:<10} {url}" for name, url in consoles.items()]
    for name in SAMPLE_ACCOUNTS:
        user = users[name]
        attrs = user.get("attributes", {})
        hub = f", hub {attrs['hub'][0]}" if "hub" in attrs else ""
        lines.append(f"  {name:<18} {user['realmRoles'][0]}, region {attrs['region'][0]}{hub}")
    lines.append(f"  scripts: curl -d grant_type=password -d client_id=homeward-dev "
                 f"-d username=operator-140403 -d password={SAMPLE_PASSWORD} {server.token_url}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args != ["fetch"]:
        print("usage: python -m deploy.local.keycloak fetch", file=sys.stderr)
        return 2
    print(ensure_keycloak())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
