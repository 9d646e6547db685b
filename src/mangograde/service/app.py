"""The grading service: FastAPI over one :class:`RunPredictor`, loaded once at start-up.

Uploads are decoded in a thread pool at the run's geometry (the reduced-size path of
training), graded in micro-batches by one grader thread (:mod:`.batcher`), and answered per
photo in upload order. The page at ``/`` is plain HTML, CSS and JavaScript from ``page/``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import time
import traceback
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST

from .. import __version__
from ..basics.errors import SettingsError
from ..evaluation.confidence import to_check
from ..evaluation.fruits import Fruits, fruit_grades
from ..explain import explain, is_cnn
from ..graders import ExportedGrader, is_export, open_grader
from ..images.decode import ImageDecodeError, decode, decoded_pixels, set_max_pixels
from ..records import ModelIdentity, RecordsError, check_name
from ..report.figures import EXPLAINED
from ..workflows.record import shares
from .batcher import MicroBatcher
from .corrections import add_correction_routes
from .drift import DriftWindow, check_window
from .guard import PixelBudget, UploadLimit
from .heatmap import heat_png
from .keeper import PhotoKeeper
from .priority import background_priority, lower_other_threads
from .recorder import DEFAULT_LOT, Recorder, Uploaded
from .schemas import (
    DriftStatus,
    FruitResult,
    GradeResponse,
    LotTally,
    ModelInfo,
    ModelRef,
    PhotoResult,
)
from .telemetry import Telemetry, configure_logging, log_request

PAGE = Path(__file__).parent / "page"
REQUEST_DECODES = 2  # a request's photos decoding at once (the decoder has 4 threads)
EXPLAIN_METHODS = ("gradcam", "lime")


@dataclass
class ServeOptions:
    """How ``mangograde serve`` runs; ``run``: a run folder."""

    run: Path
    fold: int | None = None
    max_batch: int = 32
    max_upload_mb: float = 20.0
    max_files: int = 100  # photos in one request
    body_timeout_s: float = 30.0  # the longest pause inside a request's body
    max_request_pixels: int = 200_000_000  # decoded pixels of one request's photos
    decode_pixels: int = 100_000_000  # decoded pixels in flight at once, all requests
    api_key: str | None = None  # one key, its operator named "api-key"
    api_keys: dict[str, str] = field(default_factory=dict)  # operator name -> key
    docs: bool = False  # /docs and /redoc (their scripts come from a CDN)
    explain: bool = True
    cors_origins: list[str] = field(default_factory=list)
    lime_samples: int = 150  # keeps one LIME explanation under 5 s on 2 cores
    decode_threads: int = 4
    batch_wait_s: float = 0.004
    drift_window: int = 50
    familiar: bool = True  # False: --familiar off
    db: str | None = None  # the records database's URL; None: nothing is recorded
    record_failures: str = "refuse"  # or "warn": grade anyway, count it in /metrics
    keep_photos: Path | None = None  # a copy of every graded photo, named by its SHA-256
    keep_photos_limit_mb: float = 1024.0
    # serve's own process: grading threads yield to the event loop (service/priority.py)
    yield_to_requests: bool = False


@dataclass
class _Service:
    options: ServeOptions
    predictor: Any
    model: ModelRef
    info: ModelInfo
    telemetry: Telemetry
    batcher: MicroBatcher
    decoder: ThreadPoolExecutor
    drift: DriftWindow | None = None  # runs with a familiarity model
    recorder: Recorder | None = None  # with a records database
    keeper: PhotoKeeper | None = None  # with --keep-photos
    ready: bool = False
    pixels: PixelBudget = field(default_factory=lambda: PixelBudget(ServeOptions.decode_pixels))


class PhotoError(Exception):
    def __init__(self, image_id: str, error: ImageDecodeError) -> None:
        super().__init__(error.reason)
        self.image_id = image_id
        self.reason = error.reason
        self.status = 415 if error.unsupported else 422


def _image_id(upload: UploadFile, number: int) -> str:
    """The uploaded file's own name, without any folders a client put in front of it."""
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or f"photo-{number + 1}"


def _fold_rule(fold: int | None, n_models: int) -> str:
    if fold is not None:
        return f"fold {fold} alone"
    return "mean of the folds' probabilities" if n_models > 1 else "one model"


def _versions(*names: str) -> dict[str, str]:
    from importlib import metadata

    found = {"mangograde": __version__}
    for name in names:
        with suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _run_info(options: ServeOptions) -> tuple[Any, ModelRef, ModelInfo]:
    """The grader of a run folder, and what /v1/model says of it."""
    from ..runs import open_predictor, open_run

    run = open_run(options.run)
    predictor = open_predictor(run, options.fold)
    model = ModelRef(run=run.name, fold_rule=_fold_rule(options.fold, len(predictor.models)))
    metrics = {k: v for k, v in run.metrics.items() if isinstance(v, (int, float, str))}
    info = ModelInfo(
        run=model.run,
        fold_rule=model.fold_rule,
        grades=list(predictor.grades),
        family=run.model_kind,
        preset=run.settings.get("preset"),
        explains_with="gradcam" if is_cnn(predictor) else "lime",
        metrics=metrics,
        data={k: run.metrics[k] for k in _DATA if k in run.metrics},
        versions=_versions("numpy", "pillow", "scikit-learn", "torch"),
    )
    return predictor, model, info


def _export_info(grader: ExportedGrader) -> tuple[Any, ModelRef, ModelInfo]:
    """An export folder's grader (ONNX Runtime), and what /v1/model says of it."""
    manifest = grader.manifest
    model = ModelRef(
        run=manifest["source_run"],
        fold_rule=f"{manifest['fold_rule']}, ONNX {manifest['precision']} export",
    )
    metrics = manifest["source"]["metrics"]
    info = ModelInfo(
        run=model.run,
        fold_rule=model.fold_rule,
        grades=list(grader.grades),
        family=manifest["source"]["family"],
        preset=manifest["source"]["preset"],
        explains_with="lime",
        metrics=metrics,
        data={k: metrics[k] for k in _DATA if k in metrics},
        versions=_versions("numpy", "pillow", "onnxruntime"),
    )
    return grader, model, info


_DATA = ("n_images", "n_held_out", "n_folds", "n_skipped")


def _load(options: ServeOptions) -> _Service:
    """Open the run or export (the same checks and messages as ``predict``)."""
    if is_export(options.run):
        predictor, model, info = _export_info(open_grader(options.run, options.fold))
    else:
        predictor, model, info = _run_info(options)
    telemetry = Telemetry()
    check_window(options.drift_window)
    if not options.familiar:
        predictor.without_familiarity()
    batcher = MicroBatcher(
        lambda images: _grade_batch(predictor, images),
        options.max_batch,
        options.batch_wait_s,
        telemetry.batch.observe,
        options.yield_to_requests,
    )
    lower = background_priority if options.yield_to_requests else None
    decoder = ThreadPoolExecutor(options.decode_threads, thread_name_prefix="decode",
                                 initializer=lower)  # fmt: skip
    familiar = predictor.familiarity is not None
    drift = DriftWindow(predictor, options.drift_window) if familiar else None
    recorder = None
    if options.db is not None:
        identity = ModelIdentity(model.run, predictor.model_sha256)
        recorder = Recorder(options.db, identity, options.record_failures)
    keeper = None
    if options.keep_photos is not None:
        keeper = PhotoKeeper(Path(options.keep_photos), options.keep_photos_limit_mb)
    return _Service(options, predictor, model, info, telemetry, batcher, decoder, drift,
                    recorder, keeper, pixels=PixelBudget(options.decode_pixels))  # fmt: skip


def _grade_batch(predictor: Any, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Probabilities, grade codes and (with familiarity) each photo's fold-model scores."""
    proba, codes, scores = predictor.grade_and_score(images)
    return (proba, codes) if scores is None else (proba, codes, scores.T)


def create_app(options: ServeOptions) -> FastAPI:
    """The service for ``options.run``; raises the run's errors before anything is served."""
    service = _load(options)
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
    _add_routes(app, service)
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


async def _warm_up(service: _Service) -> None:
    """Grade a plain grey photo through the whole path before saying ready."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buffer, "PNG")
    photo = await _decode(service, "warm-up.png", buffer.getvalue())
    await service.batcher.grade(photo)


async def _pixels(service: _Service, image_id: str, data: bytes) -> int:
    """What decoding the photo will cost, from its header."""
    loop = asyncio.get_running_loop()
    geometry = service.predictor.geometry
    return await loop.run_in_executor(service.decoder, decoded_pixels, image_id, geometry, data)


async def _decode(
    service: _Service, image_id: str, data: bytes, pixels: int | None = None
) -> np.ndarray:
    """The decoded photo, once its pixels fit in the service's budget (first come, first
    served: one request of huge photos waits its turn instead of holding the others)."""
    loop = asyncio.get_running_loop()
    geometry = service.predictor.geometry
    cost = await _pixels(service, image_id, data) if pixels is None else pixels
    await service.pixels.acquire(cost)
    try:
        return await loop.run_in_executor(service.decoder, decode, image_id, geometry, data)
    except ImageDecodeError as exc:
        raise PhotoError(image_id, exc) from None
    finally:
        await service.pixels.release(cost)


def _result(
    service: _Service, image_id: str, proba: np.ndarray, code: int, scores: np.ndarray | None
) -> PhotoResult:
    """One graded photo's answer; ``scores``: its familiarity scores, one a fold model."""
    predictor = service.predictor
    grades = predictor.grades
    service.telemetry.photos.labels(grades[code]).inc()
    unsure = bool(to_check(proba[None], predictor.rule.abstain)[0])
    probabilities = shares(grades, proba)
    result = PhotoResult(image_id=image_id, grade=grades[code], probabilities=probabilities,
                         model=service.model)  # fmt: skip
    if scores is not None:
        mean = float(np.mean(scores))
        result.familiarity = round(mean, 4) if np.isfinite(mean) else None
        result.unfamiliar = bool(predictor.unfamiliar(scores[:, None])[0])
    if predictor.rule.abstain is not None or scores is not None:
        result.check = unsure or bool(result.unfamiliar)
        result.reason = "unfamiliar" if result.unfamiliar else "unsure" if unsure else None
    return result


async def _grade_one(
    service: _Service, image_id: str, data: bytes, pixels: int, turn: asyncio.Semaphore
) -> tuple[PhotoResult, np.ndarray | None, Uploaded | None]:
    """The photo's answer, its probabilities and what the record keeps of its upload
    (None when it could not be graded). ``turn``: the request's photos decode a few at a
    time, so other requests' photos come between them."""
    started = time.perf_counter()
    try:
        async with turn:
            photo = await _decode(service, image_id, data, pixels)
    except PhotoError as exc:
        service.telemetry.rejected.inc()
        return PhotoResult(image_id=image_id, error=exc.reason, status=exc.status), None, None
    proba, code, *scores = await service.batcher.grade(photo)
    result = _result(service, image_id, proba, int(code), scores[0] if scores else None)
    uploaded = Uploaded(hashlib.sha256(data).hexdigest(), len(data),
                        round(1000 * (time.perf_counter() - started), 3))  # fmt: skip
    if service.keeper is not None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(service.decoder, service.keeper.keep, uploaded.sha256, data)
    if scores and service.drift is not None:
        if result.unfamiliar:
            service.telemetry.unfamiliar.inc()
        p_value = service.drift.add(scores[0])
        service.telemetry.drift_p.set(float("nan") if p_value is None else p_value)
    return result, proba, uploaded


def _lot(lot: str | None) -> str:
    """The ``lot`` field as kept (422 when it cannot be)."""
    if lot is None:
        return DEFAULT_LOT
    try:
        name = check_name(lot, "lot")
    except SettingsError as exc:
        raise HTTPException(422, str(exc)) from None
    assert name is not None
    return name


async def _record(
    service: _Service,
    lot: str,
    answers: list[tuple[PhotoResult, np.ndarray | None, Uploaded | None]],
    body: GradeResponse,
) -> None:
    """Keep the graded photos before answering: 503 when they cannot be kept, unless
    failures are only counted (``--record-failures warn``)."""
    assert service.recorder is not None
    graded = [(r, u) for r, _, u in answers if u is not None]
    if not graded:
        return
    try:
        ids = await service.recorder.record(lot, graded, body.fruits)
    except RecordsError as exc:
        service.telemetry.record_failures.inc()
        if service.recorder.failures == "warn":
            return
        raise HTTPException(
            503, f"{exc} The grades could not be kept, so none is given: try again."
        ) from None
    for (result, _), grading_id in zip(graded, ids, strict=True):
        result.grading_id = grading_id
    body.lot = lot


def _fruit_ids(fruit: list[str] | None, n_files: int) -> list[str] | None:
    """The ``fruit`` field as one id per file (422 when it cannot be)."""
    if fruit is None:
        return None
    if any(not f.strip() for f in fruit):
        raise HTTPException(422, "An empty fruit id: send a name for each fruit, or no fruit.")
    try:
        fruit = [str(check_name(f, "fruit")) for f in fruit]
    except SettingsError as exc:
        raise HTTPException(422, str(exc)) from None
    if len(fruit) == 1:
        return fruit * n_files
    if len(fruit) != n_files:
        raise HTTPException(
            422,
            f"{len(fruit)} fruit values for {n_files} photos: send one fruit for all the "
            "photos, or one per photo in upload order.",
        )
    return [f.strip() for f in fruit]


def _fruits(
    service: _Service,
    answers: list[tuple[PhotoResult, np.ndarray | None, Uploaded | None]],
    fruit_ids: list[str],
) -> list[FruitResult]:
    """Each fruit graded from its photos that could be graded, by the run's fruit rule."""
    graded = [(r, p, f) for (r, p, _), f in zip(answers, fruit_ids, strict=True)
              if p is not None]  # fmt: skip
    if not graded:
        return []
    grades = service.predictor.grades
    proba = np.array([p for _, p, _ in graded])
    fruits = Fruits.from_ids([f for _, _, f in graded])
    flags = [r.unfamiliar for r, _, _ in graded]
    unfamiliar = None if None in flags else np.array(flags, dtype=bool)
    found = fruit_grades(service.predictor.rule, proba, fruits, unfamiliar)
    has_check = service.predictor.rule.abstain is not None or unfamiliar is not None
    return [
        FruitResult(
            fruit=name,
            photos=[graded[i][0].image_id for i in fruits.photos_of(n)],
            grade=grades[found.predicted[n]],
            probabilities=shares(grades, found.proba[n]),
            check=bool(found.check[n]) if has_check else None,
            reason=found.reason(n) or None,
        )
        for n, name in enumerate(fruits.names)
    ]


def _add_routes(app: FastAPI, service: _Service) -> None:
    options = service.options

    keys = {**options.api_keys, **({KEY_NAME: options.api_key} if options.api_key else {})}

    def api_key(request: Request) -> None:
        """Refuse a request without a known key; name its operator after the key."""
        if not keys:
            return
        # Header values arrive as latin-1 text: back to the bytes the client sent (UTF-8).
        given = request.headers.get("x-api-key", "").encode("latin-1")
        found = [n for n, k in keys.items() if hmac.compare_digest(given, k.encode("utf-8"))]
        if not found:
            raise HTTPException(401, "Missing or wrong API key: send it in the X-API-Key header.")
        request.state.key_name = found[0]

    guarded = [Depends(api_key)]

    @app.post(
        "/v1/grade",
        response_model=GradeResponse,
        response_model_exclude_none=True,
        dependencies=guarded,
        tags=["grading"],
    )
    async def grade(
        request: Request,
        files: Annotated[list[UploadFile], File(description="Photos, in the order to answer")],
        fruit: Annotated[
            list[str] | None,
            Form(
                description="Which fruit the photos show: one value (every photo is that "
                "fruit) or one per file, in upload order. Each fruit is then graded from "
                "all of its photos."
            ),
        ] = None,
        lot: Annotated[
            str | None,
            Form(description=f"The lot the photos belong to (recorded; default {DEFAULT_LOT})"),
        ] = None,
    ) -> Any:
        """Grade one or many photos; a photo that cannot be read gets its own error entry.
        With ``fruit``, each fruit is graded from all of its photos too. With a records
        database, every graded photo is kept in ``lot`` before the answer is sent."""
        if len(files) > options.max_files:
            raise HTTPException(
                413, f"{len(files)} photos in one request; this service takes at most "
                f"{options.max_files} (serve --max-files). Send them in several requests.",
            )  # fmt: skip
        fruit_ids = _fruit_ids(fruit, len(files))
        lot_name = _lot(lot) if service.recorder is not None else None
        ids = [_image_id(upload, i) for i, upload in enumerate(files)]
        datas = [await upload.read() for upload in files]
        costs = await asyncio.gather(
            *(_pixels(service, i, d) for i, d in zip(ids, datas, strict=True))
        )
        if sum(costs) > options.max_request_pixels:
            raise HTTPException(
                413, f"The photos of this request would decode to {sum(costs):,} pixels, over "
                f"the {options.max_request_pixels:,} one request may take "
                "(serve --max-request-pixels). Send fewer or smaller photos at a time.",
            )  # fmt: skip
        turn = asyncio.Semaphore(REQUEST_DECODES)
        answers = await asyncio.gather(
            *(_grade_one(service, i, d, c, turn)
              for i, d, c in zip(ids, datas, costs, strict=True))
        )  # fmt: skip
        results = [result for result, _, _ in answers]
        for result, name in zip(results, fruit_ids or [], strict=False):
            result.fruit = name
        request.state.photos = len(results)
        body = GradeResponse(model=service.model, results=results)
        if fruit_ids is not None:
            body.fruits = _fruits(service, answers, fruit_ids)
        if service.recorder is not None and lot_name is not None:
            await _record(service, lot_name, answers, body)
        if service.drift is not None:
            body.drift = DriftStatus(**service.drift.status())
        failed = [r.status for r in results if r.error is not None]
        if results and len(failed) == len(results):  # nothing graded: the request failed
            status = 415 if all(s == 415 for s in failed) else 422
            return JSONResponse(body.model_dump(exclude_none=True), status_code=status)
        return body

    @app.post(
        "/v1/explain",
        dependencies=guarded,
        tags=["grading"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "The heat map"}},
    )
    async def explain_photo(
        file: Annotated[UploadFile, File(description="One photo")],
        method: Annotated[
            Literal["gradcam", "lime"] | None,
            Query(description="gradcam (CNN runs) or lime; default: the run's best"),
        ] = None,
    ) -> Response:
        """A PNG heat map of the regions that drove the photo's grade; its header
        X-Explanation (percent-encoded) says how to read it."""
        if not options.explain:
            raise HTTPException(404, "Explanations are turned off on this service (--no-explain).")
        if method == "gradcam" and service.info.explains_with != "gradcam":
            raise HTTPException(422, "Grad-CAM explains CNN runs only; use method=lime.")
        image_id = _image_id(file, 0)
        try:
            photo = await _decode(service, image_id, await file.read())
        except PhotoError as exc:
            raise HTTPException(exc.status, f"{image_id}: {exc.reason}") from None
        chosen = method or service.info.explains_with
        try:
            found = await service.batcher.run(
                explain, service.predictor, photo.copy(), chosen, None, options.lime_samples, 0,
                False,
            )  # fmt: skip
        except ImportError as exc:
            raise HTTPException(
                501, f"Explanations need {exc.name}, which this install lacks (the full one has)."
            ) from None
        caption = EXPLAINED[chosen].format(grade=found.grade)  # as the command line says it
        headers = {"X-Explanation": quote(caption)}
        return Response(heat_png(found), media_type="image/png", headers=headers)

    @app.get("/v1/model", response_model=ModelInfo, dependencies=guarded, tags=["model"])
    async def model_info() -> ModelInfo:
        """The run: grades, family, preset, training metrics, data and versions; with a
        familiarity model, its threshold and the drift window's status."""
        records = None if service.recorder is None else service.recorder.store.where
        if service.drift is None:
            return service.info.model_copy(update={"records": records})
        threshold = service.predictor.familiarity.threshold
        familiarity = {"threshold": threshold, **service.drift.status()}
        return service.info.model_copy(update={"familiarity": familiarity, "records": records})

    async def _lot_summary(lot: str, detail: bool = False) -> Any:
        if service.recorder is None:
            raise HTTPException(404, "This service keeps no records (it was started with "
                                "--no-record): there are no lots to show.")  # fmt: skip
        store = service.recorder.store
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, store.summary, lot, detail)
        except SettingsError as exc:
            raise HTTPException(404, str(exc)) from None
        except RecordsError as exc:
            raise HTTPException(503, str(exc)) from None

    @app.get("/v1/lots/{lot}", response_model=LotTally, dependencies=guarded, tags=["lots"])
    async def lot_tally(lot: str) -> LotTally:
        """A lot's tally from the records: it survives a restart of the service."""
        found = await _lot_summary(lot, detail=True)
        return LotTally(lot=found.name, gradings=found.gradings, mix=found.mix,
                        checks=found.checks, corrections=found.corrections,
                        fruits=len(found.fruits))  # fmt: skip

    html_page = {200: {"content": {"text/html": {}}, "description": "The report"}}

    @app.get("/v1/lots/{lot}/report", dependencies=guarded, tags=["lots"],
             response_class=Response, responses=html_page)  # fmt: skip
    async def lot_report(lot: str) -> Response:
        """The lot's report page (as ``mangograde lots report LOT --out lot.html``)."""
        from ..workflows.lots import lot_html

        return Response(lot_html(await _lot_summary(lot, detail=True)), media_type="text/html")

    add_correction_routes(app, service, guarded)

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


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def _add_observability(app: FastAPI, service: _Service) -> None:
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


KEY_NAME = "api-key"  # the operator of a key file holding one bare key


KEY_FILE_LIMIT = 64 * 1024


def read_api_keys(path: str | Path) -> dict[str, str]:
    """The keys in ``path``, by operator name (never printed): one a line, either the key
    alone (named ``api-key``) or ``NAME KEY``; blank lines and ``#`` comments skipped."""
    path = Path(path)
    try:
        if not path.is_file():  # not /dev/zero, a FIFO or a folder: they never end, or hang
            raise SettingsError(f"--api-key-file {path} is not a regular file of keys.")
        with path.open("rb") as handle:
            raw = handle.read(KEY_FILE_LIMIT + 1)
        if len(raw) > KEY_FILE_LIMIT:
            raise SettingsError(
                f"--api-key-file {path} is over {KEY_FILE_LIMIT // 1024} KiB: not a file of keys."
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"--api-key-file {path}: cannot read it ({exc}).") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) > 2:
            raise SettingsError(f"--api-key-file {path}, line {number}: expected KEY or "
                                f"NAME KEY, found {len(words)} words.")  # fmt: skip
        name, key = (KEY_NAME, words[0]) if len(words) == 1 else (words[0], words[1])
        if name in keys or key in keys.values():
            raise SettingsError(f"--api-key-file {path}, line {number}: the name {name!r} or "
                                "its key is given twice.")  # fmt: skip
        keys[name] = key
    if not keys:
        raise SettingsError(f"--api-key-file {path} is empty: put the key in it.")
    return keys


def from_environment() -> FastAPI:
    """The app of one worker of ``serve --workers N`` (options in $MANGOGRADE_SERVE)."""
    settings = json.loads(os.environ["MANGOGRADE_SERVE"])
    key_file = settings.pop("api_key_file")
    set_max_pixels(settings.pop("max_pixels"))
    settings["run"] = Path(settings["run"])
    settings["api_keys"] = read_api_keys(key_file) if key_file else {}
    return create_app(ServeOptions(**settings))
