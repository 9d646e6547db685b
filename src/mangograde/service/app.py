"""The grading service: a small FastAPI app over one grader, opened once at start-up.

Its parts: :mod:`.state` (options, the grader and what surrounds it), :mod:`.deps` (API
keys), the routes by subject in :mod:`.routes` (grading; lots and corrections;
operations), and here the app factory, its lifespan and the request log.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image

from .. import __version__
from ..images.decode import set_max_pixels
from .deps import KEY_NAME, key_guard, read_api_keys
from .guard import UploadLimit
from .priority import lower_other_threads
from .routes.grading import add_grading_routes, decode_photo
from .routes.lots import add_lot_routes
from .routes.operations import PAGE, add_operation_routes
from .state import ServeOptions, ServiceState, load_state
from .telemetry import LOG, configure_logging, log_request

__all__ = ["KEY_NAME", "PAGE", "ServeOptions", "create_app", "from_environment", "read_api_keys"]
MASTER_ENV = "MANGOGRADE_SERVE_MASTER"  # the pid of serve --workers N's master process


def create_app(options: ServeOptions) -> FastAPI:
    """The service for ``options.run``; raises the run's errors before anything is served."""
    service = load_state(options)
    configure_logging()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.batcher.start()
        await _warm_up(service)
        if options.yield_to_requests:
            lower_other_threads()  # the model's math threads yield to quick requests
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            await service.batcher.stop()
            service.decoder.shutdown(wait=False)
            if service.recorder is not None:
                service.recorder.close()

    app = FastAPI(
        title="mangograde",
        version=__version__,
        description="Grade mango photos with a trained mangograde run.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN, which a packing house's
        # network may not reach: off unless asked for; /openapi.json is always served.
        docs_url="/docs" if options.docs else None,
        redoc_url="/redoc" if options.docs else None,
    )
    app.state.service = service
    guarded = key_guard(options)
    add_grading_routes(app, service, guarded)
    add_lot_routes(app, service, guarded)
    add_operation_routes(app, service, guarded)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _add_observability(app, service)
    if options.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=options.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(
        UploadLimit, max_mb=options.max_upload_mb, body_timeout_s=options.body_timeout_s
    )
    return app


async def _warm_up(service: ServiceState) -> None:
    """Grade a plain grey photo through the whole path before saying ready."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, "PNG")
    photo = await decode_photo(service, "warm-up.png", buffer.getvalue())
    await service.batcher.grade(photo)


def _json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as text: JSON has no numbers for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, able to quote a body's bare NaN or Infinity back to its sender."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, 422)


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _add_observability(app: FastAPI, service: ServiceState) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        failure = None
        try:
            response = await call_next(request)
        except Exception as exc:  # noqa: BLE001 - logged here; the client gets no traceback
            failure = {"error": type(exc).__name__, "trace": traceback.format_exc()}
            response = JSONResponse({"detail": "Internal error; the service log says more."}, 500)
        seconds = time.perf_counter() - start
        route = _route(request)
        service.telemetry.request_done(route, response.status_code, seconds)
        log_request(
            method=request.method,
            path=request.url.path,
            route=route,
            status=response.status_code,
            ms=round(1000 * seconds, 2),
            photos=getattr(request.state, "photos", None),
            client=request.client.host if request.client else None,
            **(failure or {}),
        )
        return response


def end_with_master(master: int, every_s: float = 1.0, grace_s: float = 10.0) -> threading.Thread:
    """Make this worker of ``serve --workers N`` end when its master process ``master``
    does (killed with -9, it cannot stop its workers, which would go on holding the port):
    on Linux the kernel sends SIGTERM (``PR_SET_PDEATHSIG``); everywhere a thread checks
    the parent every ``every_s`` seconds, sends SIGTERM (uvicorn stops serving) and, if
    the process is still there ``grace_s`` seconds later, ends it."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the thread below still watches

    def watch() -> None:
        while os.getppid() == master:
            time.sleep(every_s)
        LOG.warning(json.dumps({"time": round(time.time(), 3), "event": "master gone",
                                "detail": f"serve's master process {master} has ended: this "
                                f"worker ({os.getpid()}) stops too."}))  # fmt: skip
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="master-watch", daemon=True)
    thread.start()
    return thread


def from_environment() -> FastAPI:
    """The app of one worker of ``serve --workers N`` (options in $MANGOGRADE_SERVE)."""
    if os.environ.get(MASTER_ENV):
        end_with_master(int(os.environ[MASTER_ENV]))
    settings = json.loads(os.environ["MANGOGRADE_SERVE"])
    key_file = settings.pop("api_key_file")
    set_max_pixels(settings.pop("max_pixels"))
    settings["run"] = Path(settings["run"])
    settings["api_keys"] = read_api_keys(key_file) if key_file else {}
    return create_app(ServeOptions(**settings))
