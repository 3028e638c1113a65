"""Deployment files stay valid: the compose file, the pinned broker, CI calling the README's
test command."""

import os
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) where it is installed, else Debian's `docker-compose`."""
    if shutil.which("docker") and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    assert shutil.which("docker-compose"), "make install provides docker-compose"
    return ["docker-compose"]


# What notify needs to sign alerts in compose (issue 17): a mounted key directory and the kids.
SIGNING = {"HOMEWARD_SIGNING_HOST_DIR": "/srv/homeward/signing",
           "HOMEWARD_SIGNING_KEYS": '{"2026-11": "active"}'}


def test_compose_file_is_valid() -> None:
    """Valid once the required values, the JWT secret and the signing keys, are given
    (tests/security checks the refusal without the secret)."""
    env = {**os.environ, "HOMEWARD_JWT_SECRET": "s" * 48, **SIGNING}
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"),
                             "config", "-q"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr


def test_compose_requires_the_signing_keys() -> None:
    """Notify never starts unsigned outside development: compose refuses without them."""
    for missing in SIGNING:
        env = {k: v for k, v in os.environ.items() if k != missing}
        env.update({"HOMEWARD_JWT_SECRET": "s" * 48,
                    **{k: v for k, v in SIGNING.items() if k != missing}})
        result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"),
                                 "config", "-q"], capture_output=True, text=True, cwd=ROOT,
                                env=env)
        assert result.returncode != 0, missing
        assert f"{missing} is required" in result.stderr + result.stdout
    notify = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["notify"]
    assert any(str(v).endswith(":/run/homeward/signing:ro") for v in notify["volumes"])


def test_compose_pins_official_images() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["redis"]["image"].startswith("redis:7.")
    for name in ("alert", "dispatch", "notify"):
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make up" in readme and "make test" in readme
