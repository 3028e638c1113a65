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


def test_compose_file_is_valid() -> None:
    """Valid once the one required value, the JWT secret, is given (tests/security checks the
    refusal without it)."""
    env = {**os.environ, "HOMEWARD_JWT_SECRET": "s" * 48}
    result = subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"),
                             "config", "-q"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr


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
