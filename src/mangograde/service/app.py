"""The grading service: a small FastAPI app over one grader, opened once at start-up.

Its parts: :mod:`.state` (options, the grader and what surrounds it), :mod:`.deps` (API
keys), the routes by subject in :mod:`.routes` (grading; lots and corrections;
operations), and here the app factory, its lifespan and the request log.
"""

from __future__ import annotations

import io
import json
import os
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
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
from .telemetry import configure_logging, log_request

__all__ = ["KEY_NAME", "PAGE", "ServeOptions", "create_app", "from_environment", "read_api_keys"]


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


def from_environment() -> FastAPI:
    """The app of one worker of ``serve --workers N`` (options in $MANGOGRADE_SERVE)."""
    settings = json.loads(os.environ["MANGOGRADE_SERVE"])
    key_file = settings.pop("api_key_file")
    set_max_pixels(settings.pop("max_pixels"))
    settings["run"] = Path(settings["run"])
    settings["api_keys"] = read_api_keys(key_file) if key_file else {}
    return create_app(ServeOptions(**settings))
