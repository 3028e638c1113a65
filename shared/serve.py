"""Serve one service with uvicorn: `python -m services.<name>` calls `serve(name)`.

Two listeners: the API on settings.host:port_for(name), and the internal ops port on
settings.ops_host:ops_port_for(name) with /metrics, /docs, /openapi.json and /asyncapi.json
(issue 12: never public; publish only the API port).

One process per service, except alert with `alert_workers` > 1 (issue 15 item 4): uvicorn's
supervisor runs that many worker processes on the one API socket, sharing one outbox; the
worker elected by services.alert.duties serves the ops port and runs the relay; its /metrics
sums every worker's series (prometheus-client's multiprocess mode, shared.metrics). Each worker
dies with the supervisor (PR_SET_PDEATHSIG), so a killed service leaves no worker behind.

Every process settles its heap once its app has started (`settle_heap`): what startup made
(modules, models, the app, caches filled by the lifespan) is moved out of the cyclic garbage
collector's view, so a full collection walks only what the running service made since.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import importlib
import os
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from shared import metrics, telemetry
from shared.settings import Settings
from shared.web_ops import ops_app


class _Follower(uvicorn.Server):
    """The ops listener stops when the API listener does; only the API one takes signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _ops_config(app: FastAPI, settings: Settings, service: str) -> uvicorn.Config:
    return uvicorn.Config(
        ops_app(app), host=settings.ops_host, port=settings.ops_port_for(service),
        log_config=None, log_level=None, access_log=False,  # the API's logging
        lifespan="off", proxy_headers=False)


class OpsServer:
    """The ops port served from inside a running worker (the elected alert worker)."""

    def __init__(self, server: _Follower, task: asyncio.Task[None]) -> None:
        self.server = server
        self.task = task

    @classmethod
    async def start(cls, app: FastAPI, settings: Settings, service: str) -> OpsServer:
        server = _Follower(_ops_config(app, settings, service))
        task = asyncio.create_task(server.serve(), name="ops-port")
        while not server.started and not task.done():  # noqa: ASYNC110 (uvicorn: a flag)
            await asyncio.sleep(0.01)
        if task.done():
            try:
                task.result()
            except SystemExit as exc:  # uvicorn exits when it cannot bind
                raise OSError(f"ops port {settings.ops_port_for(service)} unavailable") from exc
            raise OSError(f"ops port {settings.ops_port_for(service)}: server ended")
        return cls(server, task)

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.gather(self.task, return_exceptions=True)


async def _run(api: uvicorn.Server, ops: uvicorn.Server) -> None:
    internal = asyncio.create_task(ops.serve(), name="ops-port")
    try:
        await api.serve()
    finally:
        ops.should_exit = True
        await internal


def settle_heap() -> None:
    """Collect once, then freeze what is left (gc.freeze: the permanent generation).

    Why: CPython's full (generation 2) collection walks every tracked object. A started
    service holds several hundred thousand of them from imports alone (pydantic, FastAPI,
    FastStream, aiokafka, cryptography), and each full collection paused the event loop for
    30-110 ms (measured with gc.callbacks in every process of the flow bench, 2026-12-01), a
    few times a report's usual way to its case group (p50 about 23 ms). What startup made
    nearly all lives as long as the process; the little of it that later becomes cyclic
    garbage is never freed (a bounded, one-off amount; reference counting still frees the
    rest). What the service makes afterwards is collected as before."""
    gc.collect()
    gc.freeze()


def _settled(app: FastAPI) -> FastAPI:
    """`app` whose lifespan settles the heap (settle_heap) once its own startup is done."""
    started = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            settle_heap()
            yield state

    app.router.lifespan_context = lifespan
    return app


def _build(service: str, settings: Settings) -> FastAPI:
    telemetry.setup(service)  # before the app: its clients are instrumented as they are made
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings)
    telemetry.instrument_app(app)
    return _settled(app)


def _api_config(app: Any, settings: Settings, service: str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=settings.host, port=settings.port_for(service), log_level="info",
        access_log=settings.access_log, timeout_keep_alive=settings.keep_alive_s,
        # The client address is read by the services themselves, from X-Forwarded-For only
        # when the peer is one of HOMEWARD_TRUSTED_PROXIES (issue 12).
        proxy_headers=False, **extra)


def worker_app() -> FastAPI:
    """uvicorn's factory in each alert worker process (the supervisor set the environment)."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: die with the supervisor
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    return _build("alert", Settings())


_T = TypeVar("_T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop every service process runs on: uvicorn's "auto" choice (uvloop where it
    is installed, as it is with uvicorn[standard]; None means asyncio's own)."""
    return uvicorn.Config(app="", loop="auto").get_loop_factory()  # no app: only the loop


def run_on_service_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """`asyncio.run(main)` on the services' event loop (`loop_factory`), for processes that run
    a service's parts outside `serve` (the benchmarks' workers and clients)."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


def serve(service: str) -> None:
    settings = Settings()
    if service == "alert" and settings.alert_workers > 1:
        _serve_workers(settings)
        return
    app = _build(service, settings)
    api = uvicorn.Server(_api_config(app, settings, service))
    ops = _Follower(_ops_config(app, settings, service))
    try:
        # Python 3.11's asyncio.Runner takes the loop factory (uvloop) as 3.12's asyncio.run.
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(_run(api, ops))
    finally:
        telemetry.shutdown()  # the last spans are exported before the process ends


def _serve_workers(settings: Settings) -> None:
    """`alert_workers` processes on one API socket, one outbox, one elected relay."""
    os.environ["HOMEWARD_ALERT_SHARED_OUTBOX"] = "true"  # inherited by the workers
    # One /metrics for all of them: each worker's values in files summed at a scrape (the
    # elected worker serves the ops port). Emptied now: a past run's values are not summed in.
    metrics.multiprocess_dir(os.environ.get(metrics.MULTIPROC_ENV)
                             or settings.data_dir / "alert-metrics")
    config = _api_config("shared.serve:worker_app", settings, "alert", factory=True,
                         workers=settings.alert_workers)
    socket = config.bind_socket()
    Multiprocess(config, sockets=[socket]).run()
