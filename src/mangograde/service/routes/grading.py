"""``POST /v1/grade`` and ``POST /v1/explain``: photos are decoded in a thread pool at the
grader's geometry, run through the models in micro-batches across requests, and made into
grades by :func:`mangograde.graders.graded_from`, the same path as ``predict``. With a
records database, the gradings are kept before the answer is made from the ``Graded``
and the stored ids."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from ...basics.errors import SettingsError
from ...explain import explain
from ...graders import Graded, graded_from, shares
from ...images.decode import ImageDecodeError, decode, decoded_pixels
from ...records import LotClosed, RecordsError, Upload, batch_of, check_name
from ...report.figures import EXPLAINED
from ..heatmap import heat_png
from ..keeper import KeepingFailed
from ..recorder import DEFAULT_LOT
from ..schemas import DriftStatus, FruitResult, GradeResponse, PhotoResult
from ..state import ServiceState

REQUEST_DECODES = 2  # a request's photos decoding at once (the decoder has 4 threads)


class PhotoError(Exception):
    def __init__(self, image_id: str, error: ImageDecodeError) -> None:
        super().__init__(error.reason)
        self.image_id = image_id
        self.reason = error.reason
        self.status = 415 if error.unsupported else 422


@dataclass
class _Scored:
    """One photo through the models, and what its record keeps of its upload."""

    proba: np.ndarray
    code: int
    scores: np.ndarray | None  # one familiarity score a fold model
    upload: Upload
    foreign: float = float("nan")  # 1: not a mango, 0: a mango, NaN: no check


def image_id(upload: UploadFile, number: int) -> str:
    """The uploaded file's own name, without any folders a client put in front of it."""
    name = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or f"photo-{number + 1}"


async def photo_pixels(service: ServiceState, image_id: str, data: bytes) -> int:
    """What decoding the photo will cost, from its header."""
    loop = asyncio.get_running_loop()
    geometry = service.predictor.geometry
    return await loop.run_in_executor(service.decoder, decoded_pixels, image_id, geometry, data)


async def decode_photo(
    service: ServiceState, image_id: str, data: bytes, pixels: int | None = None
) -> np.ndarray:
    """The decoded photo, once its pixels fit in the service's budget (first come, first
    served: one request of huge photos waits its turn instead of holding the others)."""
    loop = asyncio.get_running_loop()
    geometry = service.predictor.geometry
    cost = await photo_pixels(service, image_id, data) if pixels is None else pixels
    await service.pixels.acquire(cost)
    try:
        return await loop.run_in_executor(service.decoder, decode, image_id, geometry, data)
    except ImageDecodeError as exc:
        raise PhotoError(image_id, exc) from None
    finally:
        await service.pixels.release(cost)


async def _score_one(
    service: ServiceState, name: str, data: bytes, pixels: int, turn: asyncio.Semaphore
) -> _Scored | PhotoResult:
    """The photo through the models, or its error's answer. ``turn``: the request's photos
    decode a few at a time, so other requests' photos come between them."""
    started = time.perf_counter()
    try:
        async with turn:
            photo = await decode_photo(service, name, data, pixels)
    except PhotoError as exc:
        service.telemetry.rejected.inc()
        return PhotoResult(image_id=name, error=exc.reason, status=exc.status)
    proba, code, scores, foreign = await service.batcher.grade(photo)
    upload = Upload.of_bytes(data, round(1000 * (time.perf_counter() - started), 3))
    if service.keeper is not None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(service.decoder, service.keeper.keep, upload.sha256, data)
        except KeepingFailed as exc:  # a full disk: nothing is graded unkept
            raise HTTPException(503, str(exc)) from None
    return _Scored(proba, int(code), scores if len(scores) else None, upload, foreign)


def _graded(
    service: ServiceState, names: list[str], scored: list[_Scored], fruits: list[str] | None
) -> Graded:
    """The request's photos that could be graded, as ``predict`` grades them."""
    grader = service.predictor
    proba = np.array([s.proba for s in scored]).reshape(len(scored), len(grader.grades))
    codes = np.array([s.code for s in scored], dtype=int)
    known = scored and all(s.scores is not None for s in scored)
    scores = np.stack([s.scores for s in scored], axis=1) if known else None
    checked = scored and not any(np.isnan(s.foreign) for s in scored)
    foreign = np.array([s.foreign for s in scored]) > 0.5 if checked else None
    return graded_from(grader, names, proba, codes, scores, fruits, not_a_fruit=foreign)


def _photo_results(service: ServiceState, graded: Graded) -> list[PhotoResult]:
    """Each graded photo's answer, from the ``Graded``."""
    reasons, familiarity = graded.reasons, graded.familiarity
    results = []
    for i, name in enumerate(graded.image_ids):
        grade = graded.grades[graded.predicted[i]]
        service.telemetry.photos.labels(grade).inc()
        result = PhotoResult(image_id=name, grade=grade, model=service.model,
                             probabilities=shares(graded.grades, graded.proba[i]))  # fmt: skip
        if familiarity is not None and graded.unfamiliar is not None:
            score = float(familiarity[i])
            result.familiarity = round(score, 4) if np.isfinite(score) else None
            result.unfamiliar = bool(graded.unfamiliar[i])
        if graded.has_checks:
            result.check = bool(reasons[i])
            result.reason = reasons[i] or None
        results.append(result)
    return results


def _fruit_results(graded: Graded) -> list[FruitResult]:
    """Each fruit graded from its photos that could be graded, by the grader's fruit rule."""
    found = graded.fruit_grades
    if found is None or not graded.image_ids:
        return []
    return [
        FruitResult(
            fruit=name,
            photos=[graded.image_ids[i] for i in found.fruits.photos_of(n)],
            grade=graded.grades[found.predicted[n]],
            probabilities=shares(graded.grades, found.proba[n]),
            check=bool(found.check[n]) if graded.has_checks else None,
            reason=found.reason(n) or None,
        )
        for n, name in enumerate(found.fruits.names)
    ]


def _watch_drift(service: ServiceState, graded: Graded) -> None:
    """The drift window and the unfamiliar count, photo by photo in upload order."""
    if service.drift is None or graded.scores is None:
        return
    for i in range(len(graded.image_ids)):
        if graded.unfamiliar is not None and graded.unfamiliar[i]:
            service.telemetry.unfamiliar.inc()
        p_value = service.drift.add(graded.scores[:, i])
        service.telemetry.drift_p.set(float("nan") if p_value is None else p_value)


def lot_name(lot: str | None) -> str:
    """The ``lot`` field as kept (422 when it cannot be)."""
    if lot is None:
        return DEFAULT_LOT
    try:
        name = check_name(lot, "lot")
    except SettingsError as exc:
        raise HTTPException(422, str(exc)) from None
    assert name is not None
    return name


def fruit_ids(fruit: list[str] | None, n_files: int) -> list[str] | None:
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


async def _record(
    service: ServiceState, lot: str, graded: Graded, uploads: list[Upload]
) -> list[int] | None:
    """Keep the graded photos before answering: their grading ids; 409 when the lot is
    closed; 503 when they cannot be kept, unless failures are only counted
    (``--record-failures warn``: None)."""
    assert service.recorder is not None
    try:
        return await service.recorder.record(batch_of(lot, service.recorder.identity, graded,
                                                      uploads))  # fmt: skip
    except LotClosed as exc:  # refused, not failed: no grade is given
        raise HTTPException(409, str(exc)) from None
    except RecordsError as exc:
        service.telemetry.record_failures.inc()
        if service.recorder.failures == "warn":
            return None
        raise HTTPException(
            503, f"{exc} The grades could not be kept, so none is given: try again."
        ) from None


async def _no_photos(request: Request, what: str, field: str) -> str:
    """Why a request holds no photo to grade, naming the form field it should use."""
    try:
        sent = sorted({str(k) for k in await request.form()})
    except Exception:  # noqa: BLE001 - not a form at all: said below
        sent = []
    found = (
        f" This request sent the field{'s' if len(sent) > 1 else ''} "
        + ", ".join(f"`{k}`" for k in sent)
        + "."
        if sent
        else ""
    )
    return (f"No photo sent: send {what} as multipart form data in the field `{field}` "
            f"(e.g. curl -F {field}=@photo.jpg).{found}")  # fmt: skip


def add_grading_routes(app: FastAPI, service: ServiceState, guarded: list[Any]) -> None:
    options = service.options

    @app.post(
        "/v1/grade",
        response_model=GradeResponse,
        response_model_exclude_none=True,
        dependencies=guarded,
        tags=["grading"],
    )
    async def grade(
        request: Request,
        files: Annotated[
            list[UploadFile] | None, File(description="Photos, in the order to answer")
        ] = None,
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
        if not files:
            raise HTTPException(422, await _no_photos(request, "photos", "files"))
        if len(files) > options.max_files:
            raise HTTPException(
                413, f"{len(files)} photos in one request; this service takes at most "
                f"{options.max_files} (serve --max-files). Send them in several requests.",
            )  # fmt: skip
        fruits = fruit_ids(fruit, len(files))
        if lot is None and "lot" in await request.form():  # sent, but empty
            lot = ""
        lot_kept = lot_name(lot) if service.recorder is not None else None
        names = [image_id(upload, i) for i, upload in enumerate(files)]
        datas = [await upload.read() for upload in files]
        costs = await asyncio.gather(
            *(photo_pixels(service, i, d) for i, d in zip(names, datas, strict=True))
        )
        if sum(costs) > options.max_request_pixels:
            raise HTTPException(
                413, f"The photos of this request would decode to {sum(costs):,} pixels, over "
                f"the {options.max_request_pixels:,} one request may take "
                "(serve --max-request-pixels). Send fewer or smaller photos at a time.",
            )  # fmt: skip
        turn = asyncio.Semaphore(REQUEST_DECODES)
        answers = await asyncio.gather(
            *(_score_one(service, i, d, c, turn)
              for i, d, c in zip(names, datas, costs, strict=True))
        )  # fmt: skip
        ok = [i for i, a in enumerate(answers) if isinstance(a, _Scored)]
        scored = [a for a in answers if isinstance(a, _Scored)]
        graded = _graded(service, [names[i] for i in ok], scored,
                         None if fruits is None else [fruits[i] for i in ok])  # fmt: skip
        results: list[Any] = list(answers)
        for i, result in zip(ok, _photo_results(service, graded), strict=True):
            results[i] = result
        for result, name in zip(results, fruits or [], strict=False):
            result.fruit = name
        _watch_drift(service, graded)
        request.state.photos = len(results)
        body = GradeResponse(model=service.model, results=results)
        if fruits is not None:
            body.fruits = _fruit_results(graded)
        if service.recorder is not None and lot_kept is not None and scored:
            ids = await _record(service, lot_kept, graded, [s.upload for s in scored])
            if ids is not None:
                for i, grading_id in zip(ok, ids, strict=True):
                    results[i].grading_id = grading_id
                body.lot = lot_kept
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
        request: Request,
        files: Annotated[
            list[UploadFile] | None, File(description="One photo (as /v1/grade takes them)")
        ] = None,
        file: Annotated[UploadFile | None, File(description="One photo (older clients)")] = None,
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
        sent = [*(files or []), *([file] if file is not None else [])]
        if not sent:
            raise HTTPException(422, await _no_photos(request, "one photo", "files"))
        if len(sent) > 1:
            raise HTTPException(422, f"{len(sent)} photos sent: /v1/explain explains one "
                                "photo at a time; send each in its own request.")  # fmt: skip
        file = sent[0]
        name = image_id(file, 0)
        try:
            photo = await decode_photo(service, name, await file.read())
        except PhotoError as exc:
            raise HTTPException(exc.status, f"{name}: {exc.reason}") from None
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
