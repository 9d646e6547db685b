"""Operations: ``/healthz``, ``/readyz``, ``/metrics``, ``/v1/model`` and the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from ..schemas import ModelInfo
from ..state import ServiceState

PAGE = Path(__file__).parent.parent / "page"


def add_operation_routes(app: FastAPI, service: ServiceState, guarded: list[Any]) -> None:
    @app.get("/v1/model", response_model=ModelInfo, dependencies=guarded, tags=["model"])
    async def model_info() -> ModelInfo:
        """The run: grades, family, preset, training metrics, data and versions; with a
        familiarity model, its threshold and the drift window's status."""
        records = None if service.recorder is None else service.recorder.store.where
        familiarity = service.predictor.familiarity
        if service.drift is None or familiarity is None:
            return service.info.model_copy(update={"records": records})
        found = {"threshold": familiarity.threshold, **service.drift.status()}
        return service.info.model_copy(update={"familiarity": found, "records": records})

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """The model is loaded and has graded a warm-up photo."""
        if service.ready:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(service.telemetry.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(PAGE / "index.html", media_type="text/html")

    app.mount("/page", StaticFiles(directory=PAGE), name="page")
