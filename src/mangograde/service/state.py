"""What one ``serve`` process holds: its options, the grader (a run folder's or an
export's, opened once at start-up), and the parts around it (batcher, decoder, drift
window, records, kept photos, telemetry)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..explain import is_cnn
from ..graders import Grader, is_export, open_grader
from ..records import identity_of
from .batcher import MicroBatcher
from .drift import DriftWindow, check_window
from .guard import PixelBudget
from .keeper import PhotoKeeper
from .priority import background_priority
from .recorder import Recorder
from .schemas import ModelInfo, ModelRef
from .telemetry import Telemetry


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
    grading_threads: int = 1  # batches graded at once (2 on a 2-core box: about 1.35x)
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
class ServiceState:
    options: ServeOptions
    predictor: Grader
    model: ModelRef
    info: ModelInfo
    telemetry: Telemetry
    batcher: MicroBatcher
    decoder: ThreadPoolExecutor
    drift: DriftWindow | None = None  # graders with a familiarity model
    recorder: Recorder | None = None  # with a records database
    keeper: PhotoKeeper | None = None  # with --keep-photos
    ready: bool = False
    pixels: PixelBudget = field(default_factory=lambda: PixelBudget(ServeOptions.decode_pixels))


_DATA = ("n_images", "n_held_out", "n_folds", "n_skipped")


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


def _run_info(options: ServeOptions) -> tuple[Grader, ModelRef, ModelInfo]:
    """The grader of a run folder, and what /v1/model says of it."""
    from ..runs import open_predictor, open_run

    run = open_run(options.run)
    predictor = open_predictor(run, options.fold)
    model = ModelRef(run=run.name, fold_rule=_fold_rule(options.fold, len(predictor.models)))
    metrics = run.headline_metrics
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


def _export_info(grader: Grader) -> tuple[Grader, ModelRef, ModelInfo]:
    """An export folder's grader (ONNX Runtime, numpy, or an ensemble of exports), and what
    /v1/model says of it."""
    manifest = grader.manifest  # type: ignore[attr-defined]  (every export keeps one)
    kind = manifest.get("engine", "onnx")
    onnx = kind == "onnx"
    engine = {"onnx": f"ONNX {manifest.get('precision')}", "numpy": "numpy"}.get(kind, kind)
    model = ModelRef(
        run=manifest["source_run"], fold_rule=f"{manifest['fold_rule']}, {engine} export"
    )
    metrics = manifest["source"]["metrics"]
    info = ModelInfo(
        run=model.run,
        fold_rule=model.fold_rule,
        grades=list(grader.grades),
        family=grader.family,
        preset=manifest["source"]["preset"],
        explains_with="lime",
        metrics=metrics,
        data={k: metrics[k] for k in _DATA if k in metrics},
        versions=_versions("numpy", "pillow", "onnxruntime", *([] if onnx else ["scipy"])),
    )
    return grader, model, info


def grade_models(predictor: Grader, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """The batcher's work, one row a photo: probabilities, grade codes, the fold models'
    familiarity scores (no columns without familiarity) and whether it is not a mango
    (NaN without the check); :func:`mangograde.graders.graded_from` grades them."""
    proba, codes, scores = predictor.grade_and_score(images)
    foreign = predictor.foreign(images)
    return (proba, codes, np.zeros((len(images), 0)) if scores is None else scores.T,
            np.full(len(images), np.nan) if foreign is None else foreign.astype(float))  # fmt: skip


def load_state(options: ServeOptions) -> ServiceState:
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
        lambda images: grade_models(predictor, images),
        options.max_batch,
        options.batch_wait_s,
        telemetry.batch.observe,
        options.yield_to_requests,
        lanes=options.grading_threads,
    )
    lower = background_priority if options.yield_to_requests else None
    decoder = ThreadPoolExecutor(options.decode_threads, thread_name_prefix="decode",
                                 initializer=lower)  # fmt: skip
    familiar = predictor.familiarity is not None
    drift = DriftWindow(predictor, options.drift_window) if familiar else None
    recorder = None
    if options.db is not None:
        recorder = Recorder(options.db, identity_of(predictor), options.record_failures)
    keeper = None
    if options.keep_photos is not None:
        keeper = PhotoKeeper(Path(options.keep_photos), options.keep_photos_limit_mb)
    return ServiceState(options, predictor, model, info, telemetry, batcher, decoder, drift,
                        recorder, keeper, pixels=PixelBudget(options.decode_pixels))  # fmt: skip
