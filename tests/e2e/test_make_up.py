"""`make up` (python -m deploy.local.stack up) brings the whole system up, answers, and on
Ctrl-C stops everything it started, leaving no process behind."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from deploy.local.stack import ROOT, free_port


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


# `make up` on a fresh checkout: no key in the environment (issue 12: none is committed; nor an
# identity secret or signing key, issues 19 and 17).
NO_KEY = {k: v for k, v in os.environ.items()
          if not k.startswith(("HOMEWARD_JWT_", "HOMEWARD_IDENTITY_", "HOMEWARD_SIGNING_",
                                "HOMEWARD_PII_"))
          and k != "HOMEWARD_ENVIRONMENT"}


def local_token(data_dir: Path) -> str:
    """What the README tells a newcomer: `python -m shared.tokens` (reads the stack's secret)."""
    return subprocess.run(
        [sys.executable, "-m", "shared.tokens", "--role", "commander", "--region", "140400"],
        cwd=ROOT, env={**NO_KEY, "HOMEWARD_DATA_DIR": str(data_dir)}, capture_output=True,
        text=True, check=True).stdout.strip()


def provider_token(port: int, username: str) -> str:
    """What the README shows scripts: the development client's password grant."""
    form = urllib.parse.urlencode({"grant_type": "password", "client_id": "homeward-dev",
                                   "username": username, "password": "homeward-dev"}).encode()
    url = f"http://127.0.0.1:{port}/realms/homeward/protocol/openid-connect/token"
    with urllib.request.urlopen(urllib.request.Request(url, data=form), timeout=10) as resp:
        return str(json.load(resp)["access_token"])


def test_make_up_starts_everything_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    ports = {name: free_port()
             for name in ("kafka", "redis", "alert", "dispatch", "notify", "keycloak")}
    up = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.stack", "up", "--data-dir", str(data_dir),
         *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port)))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=NO_KEY,
    )
    lines: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + 300  # Keycloak takes ~40 s, beside Kafka
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        assert any("Homeward is up" in line for line in lines), "".join(lines)
        # The sign-in URLs and sample accounts (issue 20), and a person's token works.
        printed = "".join(lines)
        for text in (f"http://127.0.0.1:{ports['alert']}/intake", "operator-140403",
                     "commander-140400", f"http://127.0.0.1:{ports['keycloak']}"):
            assert text in printed, printed
        person = provider_token(ports["keycloak"], "commander-140400")
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['dispatch']}/api/v1/cases",
            headers={"Authorization": f"Bearer {person}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        for name in ("alert", "dispatch", "notify"):
            url = f"http://127.0.0.1:{ports[name]}/readyz"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
        assert processes_mentioning(str(data_dir)), "the stack's processes were not found"
        # A random secret of its own, readable by its owner only, that shared.tokens signs with.
        secret = data_dir / "jwt-secret"
        assert secret.stat().st_mode & 0o077 == 0
        assert len(secret.read_text().strip()) >= 32
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['dispatch']}/api/v1/cases",
            headers={"Authorization": f"Bearer {local_token(data_dir)}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        up.wait(90)
    time.sleep(1)
    assert processes_mentioning(str(data_dir)) == []
    assert (data_dir / "kafka" / "kraft-logs" / "meta.properties").exists()
