"""``mangograde compare``: gather what several runs saved, measure it, explain their most
confident mistakes, and hand it all to ``report.html`` to render."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import MangogradeError, SettingsError
from ..basics.progress import track
from ..evaluation import evaluate, headline, one_grade_warnings
from ..images import load_images
from ..report.records import Comparison, Mistake, RunSummary
from ..runs import Run, RunError, RunPredictor, open_predictor, open_run

# The study's own figures on the AI CUP 2020 data (../reference): model kind -> rows.
STUDY_RESULTS: dict[str, list[tuple[str, str, float]]] = {
    "cnn": [
        ("CNN (10 conv layers, SGD)", "validation", 0.84125),
        ("CNN (10 conv layers, SGD)", "test", 0.796875),
        ("CNN, uniform vote of 5 models", "test", 0.800625),
    ],
    "svm": [
        ("PCA 200 + RBF-SVM, polar pixels", "validation", 0.69875),
        ("PCA 200 + RBF-SVM, raw pixels", "validation", 0.6825),
    ],
    "rf": [
        ("Random Forest, x8 flips/rotations", "OOB (leaks siblings)", 0.8235),
        ("Random Forest, x8 flips/rotations", "test", 0.61),
    ],
}
SUPPORTING_PLOTS = ("search.png", "sweep.png", "tsne.png")


def is_competition_data(run: Run) -> bool:
    """Photos in the AI CUP 2020 layout (a label CSV, grades A, B, C), not drawn by synth."""
    from ..data.synth import is_synthetic

    data = run.settings.get("data") or {}
    if data.get("layout") != "labels-csv" or tuple(run.grades) != ("A", "B", "C"):
        return False
    if "synthetic" in data:
        return not data["synthetic"]
    return run.data_root is None or not is_synthetic(run.data_root)  # runs before the flag


def _curves(run: Run, history: list[dict[str, Any]]) -> bytes | None:
    saved = run.path / "curves.png"
    if saved.is_file():
        return saved.read_bytes()
    if not history:
        return None
    from ..report.figures import training_curves

    buffer = io.BytesIO()
    training_curves(history, buffer, run.label)
    return buffer.getvalue()


def _plots(run: Run) -> list[tuple[str, bytes]]:
    found = []
    for name in SUPPORTING_PLOTS:
        for path in sorted(run.path.rglob(name)):
            found.append((str(path.relative_to(run.path)), path.read_bytes()))
    return found


def confident_mistakes(run: Run, n: int) -> list[Mistake]:
    """The ``n`` held-out photos graded wrong with the highest probability."""
    held = run.held_out
    if held is None or n <= 0:
        return []
    wrong = np.flatnonzero(held.predicted != held.true)
    confidence = held.proba[wrong, held.predicted[wrong]]
    chosen = wrong[np.argsort(-confidence, kind="stable")[:n]]
    return [
        Mistake(
            held.image_ids[i],
            held.grades[held.true[i]],
            held.grades[held.predicted[i]],
            float(held.proba[i, held.predicted[i]]),
            int(held.folds[i]),
        )
        for i in chosen
    ]


def _explain_mistakes(
    run: Run, mistakes: list[Mistake], samples: int, seed: int, method: str, one_model: bool
) -> None:
    """Explain each mistake with the fold model that held the photo out (it never saw it).

    ``method`` auto: Grad-CAM for CNNs (fast), LIME for the others (see ``explain``)."""
    from ..explain import explain
    from ..report.figures import explanation_figure

    predictors: dict[int | None, RunPredictor] = {}
    for mistake in mistakes:
        path = run.photo_path(mistake.image_id)
        if path is None:
            mistake.note = f"photo not found under {run.data_root}; it was moved or deleted"
            continue
        fold = None if one_model else mistake.fold
        if fold not in predictors:
            predictors[fold] = open_predictor(run, fold)
        predictor = predictors[fold]
        try:
            image = load_images([path], predictor.geometry).arrays[0]
            found = explain(predictor, image, method, None, samples, seed, progress=False)
        except MangogradeError as exc:
            mistake.note = f"not explained: {exc}"
            continue
        buffer = io.BytesIO()
        title = (
            f"{mistake.image_id}: true {mistake.true}, predicted {found.predicted} "
            f"({found.proba[found.predicted]:.2f})"
        )
        explanation_figure(found, buffer, title)
        mistake.figure = buffer.getvalue()


def summarise_run(
    run: Run,
    mistakes: int = 3,
    samples: int = 200,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = "auto",
) -> RunSummary:
    held = run.held_out
    if held is None:
        raise RunError(
            f"{run.path} has no predictions.csv: the training did not finish, so there is "
            "nothing to compare. Train it again (or --resume a CNN run)."
        )
    record = evaluate(
        held.true,
        held.predicted,
        held.grades,
        held.proba,
        held.groups,
        n_boot,
        0.95,
        seed,
        run.ordered,
    )
    record["warnings"] = one_grade_warnings(held.true, held.predicted, held.grades, held.folds)
    history = run.history()
    folders = run.bundle_folders()
    fit_s = run.timing.get("fit_s")
    held_root = run.data_root or run.path
    plots = _plots(run)
    if "calibration" in record:  # how far its probabilities can be trusted
        from ..report.figures import reliability_diagram

        buffer = io.BytesIO()
        reliability_diagram(record, buffer, run.label)
        plots.append(("reliability (out-of-fold probabilities)", buffer.getvalue()))
    fruit = _fruit_record(run, n_boot, seed)
    if fruit is not None and "calibration" in fruit:
        from ..report.figures import reliability_diagram

        buffer = io.BytesIO()
        reliability_diagram(fruit, buffer, run.label, unit="fruits")
        plots.append(("reliability of whole fruits (out-of-fold)", buffer.getvalue()))
    summary = RunSummary(
        run.label,
        run.model_kind,
        run.ordered,
        run.split_text,
        bool(run.timing.get("resumed")),
        record,
        None if fit_s is None else fit_s + run.timing.get("features_s", 0.0),
        run.timing.get("predict_per_photo_ms"),
        len(folders),
        run.model_bytes(),
        history,
        _curves(run, history),
        plots,
        confident_mistakes(run, mistakes),
        scored_on=f"{len(held.image_ids)} held-out photos of {_shown(held_root)}",
        fruit=fruit,
    )
    _explain_mistakes(run, summary.mistakes, samples, seed, method, len(folders) == 1)
    return summary


def _fruit_record(run: Run, n_boot: int, seed: int) -> dict[str, Any] | None:
    """The run's held-out fruits scored as its photos are (each fruit one unit)."""
    fruits = run.held_out_fruits
    if fruits is None:
        return None
    record = evaluate(fruits.true, fruits.predicted, fruits.grades, fruits.proba, None,
                      n_boot, 0.95, seed, run.ordered)  # fmt: skip
    record["headline"] = run.metrics.get("fruit") or headline(record)
    return record


def with_members(runs: list[Run]) -> tuple[list[Run], list[str]]:
    """The runs, each ensemble followed by its members (those not given already), so a
    report shows an ensemble beside what it combines; and a note for each member that is
    no longer where the ensemble recorded it."""
    seen = {r.path.resolve() for r in runs}
    found, notes = [], []
    for run in runs:
        found.append(run)
        for path in run.member_paths:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                found.append(open_run(path))
            except RunError:
                notes.append(f"{run.name}'s member {path} is not a run folder any more: the "
                             "report shows the ensemble without it.")  # fmt: skip
    return found, notes


def _common_grades(runs: Sequence[Run]) -> tuple[tuple[str, ...], list[str]]:
    """The grades the report names, and how runs of other names were matched: by rank,
    as `evaluate` does, when every run has as many grades best-first."""
    first = tuple(runs[0].grades)
    if all(tuple(r.grades) == first for r in runs):
        return first, []
    if all(r.ordered for r in runs) and all(len(r.grades) == len(first) for r in runs):
        others = {tuple(r.grades) for r in runs} - {first}
        pairs = "; ".join(
            ", ".join(f"{o} = {f}" for o, f in zip(g, first, strict=True)) for g in others
        )
        return first, [f"Grades matched by rank, best first: {pairs}."]
    listed = "; ".join(f"{r.path}: {', '.join(r.grades)}" for r in runs)
    raise SettingsError(
        f"The runs grade different grades, so they cannot be compared: {listed}. Runs of "
        "grades best-first compare when they have as many grades (matched by rank)."
    )


def _shown(folder: Path) -> str:
    """``parent/name``: enough to tell data folders apart, without the user's whole path
    in a report that may be passed on."""
    return f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name


def saved_evaluations(run: Run) -> list[RunSummary]:
    """A row for each evaluation `mangograde evaluate` saved in the run (RUN/evaluations)."""
    rows = []
    saved = sorted((run.path / "evaluations").glob("*.json"))
    size = run.model_bytes() if saved else 0
    for path in saved:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            data = Path((record.get("data") or {}).get("root") or path.stem)
            metrics, photos = record["metrics"], int(record["n_photos"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an evaluation record: a file the user put there
        if "accuracy" not in metrics:
            continue
        rows.append(
            RunSummary(
                f"{run.label} on {_shown(data)}",
                run.model_kind,
                run.ordered,
                "evaluated by `mangograde evaluate`",
                False,
                record,
                None,
                None,
                int(record.get("models", 1)),
                size,
                [],
                None,
                [],
                scored_on=f"{photos} photos of {_shown(data)}",
                fruit=record.get("fruit"),
            )
        )
    return rows


def compare_runs(
    paths: Sequence[str | Path],
    mistakes: int = 3,
    samples: int = 200,
    n_boot: int = 2000,
    seed: int = 0,
    study: bool | None = None,
    progress: bool | None = None,
    method: str = "auto",
) -> Comparison:
    """Summaries of ``paths`` (run folders) for the report; ``study`` None decides by data.

    ``method`` explains the mistakes: auto (Grad-CAM for CNNs, LIME for the others),
    lime or gradcam (a run it cannot explain gets a note instead)."""
    start = time.perf_counter()
    if not paths:
        raise SettingsError("Give at least one run folder to compare.")
    if method not in ("auto", "lime", "gradcam"):
        raise SettingsError(f"Unknown explanation method {method!r}. Valid: auto, lime, gradcam.")
    runs, missing = with_members([open_run(p) for p in paths])
    grades, notices = _common_grades(runs)
    notices += missing
    summaries = []
    for run in track(runs, len(runs), "Summarising runs", progress):
        summaries.append(summarise_run(run, mistakes, samples, n_boot, seed, method))
        summaries += saved_evaluations(run)
    if len({s.scored_on for s in summaries}) > 1:
        notices.append(
            "The rows were scored on different photos ("
            + "; ".join(f"{s.label}: {s.scored_on}" for s in summaries)
            + "): their scores are not directly comparable, so a row is marked best only "
            "among rows scored on the same photos."
        )
    competition = all(is_competition_data(r) for r in runs) if study is None else study
    return Comparison(
        summaries,
        grades,
        STUDY_RESULTS if competition else None,
        datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        time.perf_counter() - start,
        notices,
    )
