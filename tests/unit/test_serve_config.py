"""The API server's HTTP settings (shared.serve)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvloop
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from shared.serve import _api_config, _settled, loop_factory, run_on_service_loop
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


def test_the_heap_is_settled_after_the_apps_own_startup() -> None:
    """What the app's lifespan made at startup is in the permanent generation, where no later
    full collection walks it; the app's own startup, its state and its shutdown still run."""
    ran: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        app.state.cache = [[n] for n in range(1000)]  # lists: objects the collector tracks
        ran.append("startup")
        yield {"made": "at startup"}
        ran.append("shutdown")

    app = _settled(FastAPI(lifespan=lifespan))

    @app.get("/state")
    def state(request: Request) -> dict[str, str]:
        return {"made": request.state.made}

    gc.unfreeze()
    try:
        with TestClient(app) as client:
            assert ran == ["startup"]
            cache = app.state.cache
            assert all(gc.is_tracked(c) for c in cache)
            walked = {id(o) for o in gc.get_objects()}  # every generation the collector walks
            assert not any(id(c) in walked for c in cache)  # frozen after the startup made it
            assert client.get("/state").json() == {"made": "at startup"}
        assert ran == ["startup", "shutdown"]
    finally:
        gc.unfreeze()  # this test process goes on as it was


def test_benchmark_processes_run_on_the_services_loop() -> None:
    """What the API server runs on (uvicorn's "auto": uvloop, locked in uv.lock through
    uvicorn[standard] for every platform CI runs on, so imported here, never skipped) is what
    `run_on_service_loop` runs a coroutine on: a benchmark's worker process measures the loop
    the service has, not asyncio's default."""
    assert loop_factory() is uvloop.new_event_loop
    assert _api_config(object(), Settings(), "notify").get_loop_factory() is loop_factory()

    async def which() -> type:
        return type(asyncio.get_running_loop())

    assert run_on_service_loop(which()) is uvloop.Loop
