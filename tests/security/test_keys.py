"""Issue 12, "Keys and tokens": no usable default secret anywhere, `aud` and a lifetime cap on
every token, admins scoped by region like everyone else, live streams ending with their token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.local.stack import ROOT, ServiceProcess, free_port
from shared.auth import InvalidToken, Role, mint_token, verify_token
from shared.settings import Settings
from tests.helpers import eventually, report_body
from tests.security.conftest import bearer
from tests.unit.test_deploy import SIGNING, compose_command

# The secret once committed as the default of settings.py and docker-compose.yml: anyone who
# read the repository could sign with it.
COMMITTED = "homeward-local-development-secret-change-me"
KEY = "k" * 48


@pytest.fixture
def no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOMEWARD_JWT_SECRET", "HOMEWARD_JWT_SECRET_FILE", "HOMEWARD_ENVIRONMENT",
                 "HOMEWARD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def env_without_key(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HOMEWARD_JWT_") and k != "HOMEWARD_ENVIRONMENT"}
    return {**env, **extra}


# (environment, secret, secret in data_dir/jwt-secret, accepted)
SECRET_CASES = [
    (None, None, None, False),                # unset environment is production
    ("production", None, None, False),
    ("staging", None, None, False),
    ("development", None, None, False),       # nothing to fall back on
    (None, COMMITTED, None, False),
    ("staging", COMMITTED, None, False),
    ("development", COMMITTED, None, False),  # published: refused even in development
    ("development", None, COMMITTED, False),
    ("production", "x" * 31, None, False),    # below 32 bytes
    ("production", "密" * 10, None, False),   # 30 bytes in UTF-8
    ("production", "x" * 32, None, True),
    (None, KEY, None, True),
    ("development", "short", None, True),     # development only: a warning
    ("development", None, KEY, True),         # the secret `make up` wrote
    ("production", None, KEY, False),         # production never reads the local file
]


@pytest.mark.parametrize(("environment", "secret", "local_file", "accepted"), SECRET_CASES)
@pytest.mark.usefixtures("no_key_in_env")
def test_no_usable_default_secret(environment: str | None, secret: str | None,
                                  local_file: str | None, accepted: bool, tmp_path: Path) -> None:
    if local_file is not None:
        (tmp_path / "jwt-secret").write_text(local_file + "\n")
    values: dict[str, Any] = {"data_dir": tmp_path}
    if environment is not None:
        values["environment"] = environment
    if secret is not None:
        values["jwt_secret"] = secret
    if accepted:
        settings_ = Settings(**values)
        assert settings_.jwt_secret is not None
        verify_token(settings_, mint_token(settings_, Role.operator, "140403"))
    else:
        with pytest.raises(ValueError, match=r"HOMEWARD_JWT|published|32 bytes"):
            Settings(**values)


@pytest.mark.usefixtures("no_key_in_env")
def test_secret_file_and_public_key_settings(tmp_path: Path) -> None:
    path = tmp_path / "mounted-secret"
    path.write_text(KEY + "\n")
    assert Settings(jwt_secret_file=path).jwt_secret is not None
    with pytest.raises(ValueError, match="does not exist"):
        Settings(jwt_secret_file=tmp_path / "missing")
    with pytest.raises(ValueError, match="PUBLIC_KEY"):
        Settings(jwt_algorithm="RS256")


@settings(max_examples=40, deadline=None)
@given(secret=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s))
def test_secret_length_rule_holds_for_any_secret(secret: str) -> None:
    """Outside development: accepted exactly when the secret is 32 bytes or more."""
    long_enough = len(secret.encode()) >= 32
    try:
        Settings(environment="production", jwt_secret=secret)
    except ValueError:
        assert not long_enough
    else:
        assert long_enough


@pytest.mark.parametrize("service", ["alert", "dispatch", "notify"])
@pytest.mark.parametrize("environment", [None, "production"])
def test_services_refuse_to_start_without_a_key(service: str, environment: str | None,
                                                tmp_path: Path) -> None:
    env = env_without_key(HOMEWARD_DATA_DIR=str(tmp_path), HOMEWARD_PORT=str(free_port()),
                          HOMEWARD_OPS_PORT=str(free_port()),
                          HOMEWARD_KAFKA_BOOTSTRAP="127.0.0.1:1",
                          HOMEWARD_REDIS_URL="redis://127.0.0.1:1/0")
    if environment:
        env["HOMEWARD_ENVIRONMENT"] = environment
    done = subprocess.run([sys.executable, "-m", f"services.{service}"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "HOMEWARD_JWT_SECRET" in done.stderr, done.stderr[-2000:]


def test_compose_requires_the_secret_and_binds_loopback() -> None:
    compose = [*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "config"]
    refused = subprocess.run(compose, capture_output=True, text=True, cwd=ROOT,
                             env=env_without_key())
    assert refused.returncode != 0
    assert "HOMEWARD_JWT_SECRET is required" in refused.stderr + refused.stdout
    given_ = subprocess.run(compose, capture_output=True, text=True, cwd=ROOT,
                            env=env_without_key(HOMEWARD_JWT_SECRET=KEY, **SIGNING))
    assert given_.returncode == 0, given_.stderr
    config = yaml.safe_load(given_.stdout)
    for name in ("alert", "dispatch", "notify"):
        ports = config["services"][name]["ports"]
        assert ports, name
        for port in ports:
            text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port}"
            assert text.startswith("127.0.0.1:"), (name, port)
        assert COMMITTED not in str(config["services"][name]["environment"])


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "x", "role": "admin", "region": "000000", "iss": "homeward",
            "aud": "homeward", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(("case", "token_claims", "key"), [
    ("no aud", claims(aud=None), KEY),
    ("other aud", claims(aud="another-system"), KEY),
    ("no exp", claims(exp=None), KEY),
    ("no iat", claims(iat=None), KEY),
    ("lifetime over the cap", claims(exp=int(time.time()) + 13 * 3600), KEY),
    ("committed secret", claims(), COMMITTED),
    ("other issuer", claims(iss="someone"), KEY),
])
def test_tokens_need_aud_and_a_capped_lifetime(case: str, token_claims: dict[str, Any],
                                               key: str) -> None:
    settings_ = Settings(jwt_secret=KEY)
    assert verify_token(settings_, jwt.encode(claims(), KEY, algorithm="HS256")).sub == "x"
    with pytest.raises(InvalidToken):
        verify_token(settings_, jwt.encode(token_claims, key, algorithm="HS256"))


@settings(max_examples=40, deadline=None)
@given(lifetime=st.integers(min_value=1, max_value=3 * 12 * 3600))
def test_lifetime_cap_holds_for_any_lifetime(lifetime: int) -> None:
    settings_ = Settings(jwt_secret=KEY, jwt_max_ttl_s=12 * 3600)
    now = int(time.time())
    token = jwt.encode(claims(iat=now, exp=now + lifetime), KEY, algorithm="HS256")
    try:
        verify_token(settings_, token)
    except InvalidToken:
        assert lifetime > settings_.jwt_max_ttl_s
    else:
        assert lifetime <= settings_.jwt_max_ttl_s
    if lifetime > settings_.jwt_max_ttl_s:
        with pytest.raises(ValueError, match="jwt_max_ttl_s"):
            mint_token(settings_, Role.admin, "000000", ttl_s=lifetime)


def forged(secret: str, **overrides: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode(claims(sub="mallory", **overrides), secret,
                                                    algorithm="HS256")}


@pytest.mark.e2e
async def test_forged_admin_token_with_the_committed_secret_is_refused(
    security_stack: dict[str, ServiceProcess],
) -> None:
    alert, dispatch, notify = (security_stack[n].url for n in ("alert", "dispatch", "notify"))
    hub = {"kind": "hub", "name": "伪造", "region_code": "140403",
           "location": {"lat": 36.2, "lon": 113.1}, "channel": {"type": "console"}}
    answers = []
    async with httpx.AsyncClient(timeout=10) as http:
        # With and without `aud`: whatever the claims, the published secret signs nothing.
        for headers in (forged(COMMITTED), forged(COMMITTED, aud=None)):
            answers += [
                await http.get(f"{alert}/api/v1/reports/r-1", headers=headers),
                await http.get(f"{dispatch}/api/v1/cases", headers=headers),
                await http.post(f"{notify}/api/v1/subscribers", headers=headers, json=hub),
            ]
    assert [a.status_code for a in answers] == [401] * 6


@pytest.mark.e2e
async def test_admin_is_scoped_by_region(security_stack: dict[str, ServiceProcess]) -> None:
    """A province's admin (江苏 320000) sees nothing of a 长治 case in any service; the
    national admin (000000) does."""
    alert, dispatch, notify = (security_stack[n].url for n in ("alert", "dispatch", "notify"))
    national, jiangsu = bearer(Role.admin, "000000"), bearer(Role.admin, "320000")
    async with httpx.AsyncClient(timeout=10) as http:
        hub = await http.post(f"{notify}/api/v1/subscribers", headers=national, json={
            "kind": "hub", "name": "长治站", "region_code": "140403",
            "location": {"lat": 36.2, "lon": 113.1}, "channel": {"type": "console"}})
        assert hub.status_code == 201, hub.text
        hub_id = hub.json()["subscriber_id"]
        posted = await http.post(f"{alert}/api/v1/reports", headers=bearer(Role.operator,
                                 "140403"), json=report_body(reporter__phone="13512340001",
                                                             child__name="区域测试"))
        assert posted.status_code == 202, posted.text
        case_id, report_id = posted.json()["case_id"], posted.json()["report_id"]

        async def known() -> bool:
            got = await http.get(f"{notify}/api/v1/deliveries", params={"case_id": case_id},
                                 headers=national)
            case = await http.get(f"{dispatch}/api/v1/cases/{case_id}", headers=national)
            return got.status_code == 200 and case.status_code == 200

        await eventually(known, timeout=60)
        reads = {
            f"{alert}/api/v1/reports/{report_id}": 200,
            f"{dispatch}/api/v1/cases/{case_id}": 200,
            f"{dispatch}/api/v1/organs/140400": 200,
            f"{notify}/api/v1/deliveries?case_id={case_id}": 200,
            f"{notify}/api/v1/cases/{case_id}/spread.svg": 200,
            f"{notify}/api/v1/hubs/{hub_id}": 200,
            f"{notify}/api/v1/hubs/{hub_id}/alerts": 200,
        }
        for url, status in reads.items():
            assert (await http.get(url, headers=national)).status_code == status, url
            assert (await http.get(url, headers=jiangsu)).status_code == 404, url
        listed = (await http.get(f"{dispatch}/api/v1/cases", headers=jiangsu)).json()
        assert all(c["case_id"] != case_id for c in listed)
        change = await http.put(f"{dispatch}/api/v1/organs/140400/availability",
                                headers=jiangsu, json={"post": "deputy", "available": True,
                                                       "reason": "越权测试"})
        assert change.status_code == 404


async def stream_ends(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        async for _ in response.aiter_lines():
            pass


@pytest.mark.e2e
async def test_streams_close_when_their_token_expires(
    security_stack: dict[str, ServiceProcess],
) -> None:
    dispatch, notify = security_stack["dispatch"].url, security_stack["notify"].url
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=60)) as http:
        hub = await http.post(f"{notify}/api/v1/subscribers", headers=bearer(
            Role.admin, "000000"), json={"kind": "hub", "name": "到期站", "region_code": "140403",
                                         "location": {"lat": 36.2, "lon": 113.1},
                                         "channel": {"type": "console"}})
        hub_id = hub.json()["subscriber_id"]
        streams = [
            (f"{dispatch}/api/v1/stream", bearer(Role.commander, "140400", ttl_s=3)),
            (f"{notify}/api/v1/hubs/{hub_id}/stream",
             bearer(Role.hub, "140400", hub_id=hub_id, ttl_s=3)),
        ]
        # A generous bound: the streams must end by themselves (they never did).
        await asyncio.wait_for(asyncio.gather(*(stream_ends(http, u, h) for u, h in streams)),
                               timeout=45)
