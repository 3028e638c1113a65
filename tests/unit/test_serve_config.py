"""The API server's HTTP settings (shared.serve)."""

from __future__ import annotations

import httpx
import pytest

from shared.serve import _api_config
from shared.settings import Settings


@pytest.mark.parametrize("service", ["alert", "dispatch", "notify"])
def test_idle_connections_outlive_the_clients_expiry(service: str) -> None:
    """A client sending on a pooled connection the server closes at that very instant gets a
    ReadError, and a POST is not retried: the server must keep an idle connection open longer
    than clients (httpx: 5 s) and load balancers (60 s) keep theirs, so they close first."""
    config = _api_config(object(), Settings(), service)
    assert config.timeout_keep_alive == Settings().keep_alive_s
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert config.timeout_keep_alive > max(client_expiry, 60)


def test_the_keep_alive_is_a_setting() -> None:
    assert _api_config(object(), Settings(keep_alive_s=7), "alert").timeout_keep_alive == 7
    with pytest.raises(ValueError, match="keep_alive_s"):
        Settings(keep_alive_s=0)
