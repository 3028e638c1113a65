"""Serve one service with uvicorn: `python -m services.<name>` calls `serve(name)`.

Two listeners in one process: the API on settings.host:port_for(name), and the internal ops
port on settings.ops_host:ops_port_for(name) with /metrics, /docs and /openapi.json (issue 12:
never public; publish only the API port).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Generator

import uvicorn

from shared import telemetry
from shared.settings import Settings
from shared.web import ops_app


class _Follower(uvicorn.Server):
    """The ops listener stops when the API listener does; only the API one takes signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _run(api: uvicorn.Server, ops: uvicorn.Server) -> None:
    internal = asyncio.create_task(ops.serve(), name="ops-port")
    try:
        await api.serve()
    finally:
        ops.should_exit = True
        await internal


def serve(service: str) -> None:
    settings = Settings()
    telemetry.setup(service)  # before the app: its clients are instrumented as they are made
    app = importlib.import_module(f"services.{service}.app").create_app(settings)
    telemetry.instrument_app(app)
    api = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port_for(service), log_level="info",
        access_log=settings.access_log,
        # The client address is read by the services themselves, from X-Forwarded-For only
        # when the peer is one of HOMEWARD_TRUSTED_PROXIES (issue 12).
        proxy_headers=False))
    ops = _Follower(uvicorn.Config(
        ops_app(app), host=settings.ops_host, port=settings.ops_port_for(service),
        log_config=None, log_level=None, access_log=False,  # the API's logging
        lifespan="off", proxy_headers=False))
    # Python 3.11's asyncio.Runner takes the loop factory (uvloop) as 3.12's asyncio.run does.
    try:
        with asyncio.Runner(loop_factory=api.config.get_loop_factory()) as runner:
            runner.run(_run(api, ops))
    finally:
        telemetry.shutdown()  # the last spans are exported before the process ends
