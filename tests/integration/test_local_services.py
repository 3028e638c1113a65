"""Starting the local services (deploy/local/stack.start_all): a service that fails to start
takes the ones already started down with it and says why. Before, the others were left
running for the rest of the test session, consuming as the next test's stack (full run,
stop 17: an alert that exited during start was followed by a stack whose widening another
test's notify took)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.stack import ServiceProcess, free_port, service_env, start_all


def test_a_service_that_fails_to_start_leaves_none_running_and_its_log_says_why(
    tmp_path: Path,
) -> None:
    ports = {name: free_port() for name in ("alert", "dispatch", "notify")}
    env = service_env("127.0.0.1:9", "redis://127.0.0.1:9", tmp_path, ports)
    # alert cannot start: a JWT key far too short is refused at start (issue 12).
    broken = ServiceProcess("alert", ports["alert"],
                            {**env, "HOMEWARD_PORT": str(ports["alert"]),
                             "HOMEWARD_JWT_SECRET": "short"}, tmp_path / "alert.log")
    # dispatch starts and runs (waiting for a Kafka that is not there).
    running = ServiceProcess("dispatch", ports["dispatch"],
                             {**env, "HOMEWARD_PORT": str(ports["dispatch"])},
                             tmp_path / "dispatch.log")
    with pytest.raises(RuntimeError) as failed:
        start_all([broken, running])
    assert "alert exited with" in str(failed.value)
    assert "HOMEWARD_JWT_SECRET" in str(failed.value), "the log's last lines are in the error"
    assert running.proc is not None and running.proc.poll() is not None, "dispatch was stopped"
