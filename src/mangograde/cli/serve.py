"""``mangograde serve``: the grading service and its page on the packing line."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..basics.errors import SettingsError
from ..basics.limits import DEFAULT_MAX_PIXELS
from .options import FamiliarOpt, FoldOpt, MaxPixelsOpt, RunArg, familiar_on, notices, out
from .records import DEFAULT_DB


def _need_service_libraries() -> None:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise SettingsError(
            f"serve needs {exc.name}: pip install 'mangograde[serve]' (FastAPI, uvicorn, "
            "python-multipart, prometheus-client)."
        ) from None


LOOPBACK = ("127.0.0.1", "localhost", "::1")
# prometheus-client's multiprocess folder, read when it is imported: serve keeps its own
METRICS_ENV = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def _finite(**values: float) -> None:
    """NaN and infinity pass typer's ranges (every comparison with NaN is false): refuse."""
    for name, value in values.items():
        if not math.isfinite(value):
            option = "--" + name.replace("_", "-")
            raise SettingsError(f"{option} must be a finite number, not {value}.")
    if values["keep_photos_limit_mb"] <= 0:
        raise SettingsError(
            "--keep-photos-limit-mb must be above 0 (megabytes), "
            f"got {values['keep_photos_limit_mb']}."
        )


def _own_metrics_folder() -> None:
    """Forget a PROMETHEUS_MULTIPROC_DIR from the environment before prometheus-client is
    imported: with one process there is nothing to share, and with several, serve makes
    a new, empty folder (files left in another one would break /metrics)."""
    for name in METRICS_ENV:
        given = os.environ.pop(name, None)
        if given:
            out.print(
                f"[yellow]Note:[/] {name}={escape(given)} is not used: serve keeps its "
                "metrics itself (in a new folder of its own with --workers N)."
            )


def serve_command(
    run_dir: RunArg,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes, each with the model loaded.")
    ] = 1,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch", min=1, help="Photos graded in one forward pass (1: no micro-batching)."
        ),  # fmt: skip
    ] = 32,
    grading_threads: Annotated[
        int,
        typer.Option(
            "--grading-threads",
            min=1,
            help="Batches graded at once, each in its own thread (the math runs outside "
            "Python's lock): 2 grades about a third more photos a second on a 2-core box.",
        ),
    ] = 1,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="File of the keys clients send as X-API-Key: one a line, KEY or NAME KEY "
            "(NAME: the operator of that key's corrections).",
        ),
    ] = None,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.01, help="Largest request body, in MB.")
    ] = 20.0,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            min=1,
            help="Connections and requests at once; more get 503 (a worker's own count).",
        ),
    ] = 200,
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            min=0.1,
            help="Seconds a new connection has to send its request headers, then closed.",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout", min=0.1, help="Seconds a request's body may pause, then 408."
        ),
    ] = 30.0,
    max_files: Annotated[
        int, typer.Option("--max-files", min=1, help="Most photos in one request (413 above).")
    ] = 100,
    max_request_pixels: Annotated[
        int,
        typer.Option(
            "--max-request-pixels",
            min=1,
            help="Most decoded pixels in one request's photos (413 above; a JPEG counts at "
            "the reduced size it is read at).",
        ),
    ] = 200_000_000,
    explain: Annotated[
        bool, typer.Option("--explain/--no-explain", help="Offer heat maps (/v1/explain).")
    ] = True,
    docs: Annotated[
        bool,
        typer.Option(
            "--docs",
            help="Serve interactive API docs at /docs (the browser loads them from a CDN; "
            "/openapi.json is always there).",
        ),
    ] = False,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Let pages from this origin call the API (repeat)."),
    ] = None,
    fold: FoldOpt = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    drift_window: Annotated[
        int,
        typer.Option(
            "--drift-window",
            help="Test the last N photos against the run's held-out photos (runs with a "
            "familiarity model): /metrics, /v1/model and the page say when they drift.",
        ),
    ] = 50,
    familiar: FamiliarOpt = "on",
    db: Annotated[
        str,
        typer.Option(
            "--db",
            help="Record every grading here: sqlite:///PATH or postgresql+psycopg://USER@HOST"
            ":PORT/DATABASE (an empty database gets the schema).",
        ),
    ] = DEFAULT_DB,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Keep no record of the gradings.")
    ] = False,
    record_failures: Annotated[
        str,
        typer.Option(
            "--record-failures",
            help="refuse: answer 503 when the gradings cannot be recorded (nothing is graded "
            "unrecorded); warn: grade anyway, and count it in /metrics.",
        ),
    ] = "refuse",
    keep_photos: Annotated[
        Path | None,
        typer.Option(
            "--keep-photos",
            help="Keep a copy of every graded photo in this folder, named by the SHA-256 of "
            "its bytes (as recorded), to look at and relabel later.",
        ),
    ] = None,
    keep_photos_limit_mb: Annotated[
        float,
        typer.Option(
            "--keep-photos-limit-mb",
            help="Largest size of --keep-photos; the oldest copies go first.",
        ),
    ] = 1024.0,
) -> None:
    """Serve a run: the API under /v1 (docs at /docs), a grading page at /, health at
    /healthz and /readyz, Prometheus metrics at /metrics. The model loads once, at start."""
    _finite(max_upload_mb=max_upload_mb, header_timeout=header_timeout,
            body_timeout=body_timeout, keep_photos_limit_mb=keep_photos_limit_mb)  # fmt: skip
    _own_metrics_folder()
    _need_service_libraries()
    import uvicorn

    from ..service.app import ServeOptions, create_app, read_api_keys

    familiar_on(familiar)
    from ..images.decode import set_max_pixels
    from ..service.recorder import FAILURES

    if record_failures not in FAILURES:
        raise typer.BadParameter(
            f"--record-failures must be refuse or warn, not {record_failures!r}."
        )
    set_max_pixels(max_pixels)
    options = ServeOptions(
        run=run_dir,
        fold=fold,
        max_batch=max_batch,
        grading_threads=grading_threads,
        max_upload_mb=max_upload_mb,
        max_files=max_files,
        body_timeout_s=body_timeout,
        max_request_pixels=max_request_pixels,
        api_keys=read_api_keys(api_key_file) if api_key_file else {},
        explain=explain,
        docs=docs,
        cors_origins=list(cors_origin or []),
        drift_window=drift_window,
        familiar=familiar_on(familiar),
        db=None if no_record else db,
        record_failures=record_failures,
        keep_photos=keep_photos,
        keep_photos_limit_mb=keep_photos_limit_mb,
        yield_to_requests=True,
    )
    app = create_app(options)  # a bad RUN stops here, with predict's message
    notices(app.state.service.predictor.notices)
    recorder = app.state.service.recorder
    if recorder is not None:
        out.print(f"Recording every grading in {escape(recorder.store.where)} (--no-record: none)")
    where = f"http://{host}:{port}"
    docs_at = "/docs" if docs else "/openapi.json"
    out.print(f"Serving {escape(str(run_dir))} at {where} (page at /, API at {docs_at})")
    if not options.api_keys and host not in LOOPBACK:
        out.print(
            f"[yellow]Warning:[/] serving on {escape(host)} without --api-key-file: anyone who "
            "can reach this address can grade photos, record gradings and correct them."
        )
    from ..service.timeouts import HEADER_TIMEOUT_ENV, uvicorn_limits

    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    limits = uvicorn_limits(max_connections)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", **limits)
        return
    # Each worker process builds its own app from the same options; their metrics meet in
    # one folder (prometheus-client's multiprocess mode), emptied for this server.
    import shutil
    import tempfile

    from ..service.app import MASTER_ENV
    from ..service.telemetry import MULTIPROCESS

    os.environ[MULTIPROCESS] = tempfile.mkdtemp(prefix="mangograde-metrics-")
    os.environ[MASTER_ENV] = str(os.getpid())  # the workers end when this process does
    os.environ["MANGOGRADE_SERVE"] = json.dumps(
        {**vars(options), "run": str(run_dir), "api_key": None, "api_keys": {},
         "keep_photos": str(keep_photos) if keep_photos else None,
         "api_key_file": str(api_key_file) if api_key_file else None, "max_pixels": max_pixels}
    )  # fmt: skip
    try:
        uvicorn.run(
            "mangograde.service.app:from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            log_level="warning",
            **limits,
        )
    finally:
        shutil.rmtree(os.environ.pop(MULTIPROCESS), ignore_errors=True)
