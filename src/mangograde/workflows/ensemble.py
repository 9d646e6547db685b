"""``mangograde ensemble RUN RUN... --out DIR``: runs trained on the same photos, folds,
fruits and grades, as one run graded by the weighted mean of their calibrated
probabilities; and ``train --preset best``, which trains the members first.

The ensemble's out-of-fold probabilities are its members' (each already scaled by its
run's temperature for that fold), weighted: ``equal``, or ``fit``: for each fold, the
weights that give the other folds' out-of-fold fruits the highest likelihood (never the
photos they score), and for grading new photos each fold keeps its own. Then, like any
run, its own temperature fit on out-of-fold photos and fruits, its predictions.csv,
fruits.csv and metrics.json, and a fold model a fold (:class:`RunMean`: the members' fold
models). A photo is unfamiliar when any member finds it so.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import SettingsError
from ..basics.outputs import claim_folder
from ..data import Dataset
from ..evaluation import evaluate, fruit_level, headline
from ..evaluation.confidence import abstained, calibration
from ..evaluation.decisions import decide
from ..evaluation.familiarity import EitherFamiliarity, FamiliarityModel
from ..evaluation.fruits import Fruits, combine, fruit_labels, fruit_rule
from ..evaluation.not_a_fruit import split_arrays
from ..evaluation.temperature import cross_fit
from ..graders import is_export
from ..images.geometry import Resize
from ..models.bundle import library_versions
from ..models.ensemble import RunMean
from ..models.registry import Settings, get_model
from ..runs import folder, staging
from ..runs.folder import HeldOut, Run, open_run
from ..runs.lock import RunLock

WEIGHTS = ("equal", "fit")
GRID = 20  # fit: weights on a grid of 1/20ths
MEMBERS = "members"  # where train --preset best keeps the runs it trains, in the ensemble
FRUIT_BOOTSTRAP = 1000
_FLOOR = 1e-6


@dataclass
class EnsembleResult:
    out: Path
    metrics: dict[str, Any]
    labels: list[str]
    weights: list[float]  # chosen on every fold's fruits (fit) or equal
    notices: list[str] = field(default_factory=list)


def _refuse(path: Path) -> None:
    if is_export(path):
        raise SettingsError(
            f"{path} is an export: an ensemble is made of run folders (it keeps their fold "
            "models). Give the run it was exported from; export the ensemble afterwards."
        )


def open_members(paths: Sequence[str | Path]) -> list[Run]:
    """The member runs, refused with what to do: fewer than 2, one twice, an export, an
    adapted run or an ensemble."""
    if len(paths) < 2:
        raise SettingsError(
            f"An ensemble needs 2 or more runs, got {len(paths)}: give the runs to combine, "
            "e.g. mangograde ensemble runs/colour runs/cnn-fast --out runs/best."
        )
    for path in map(Path, paths):
        _refuse(path)
    runs = [open_run(p) for p in paths]
    seen: dict[Path, Path] = {}
    for run in runs:
        where = run.path.resolve()
        if where in seen:
            raise SettingsError(
                f"{run.path} is given twice (also as {seen[where]}): an ensemble of a run with "
                "itself is that run. Give different runs."
            )
        seen[where] = run.path
        if run.parent_path is not None:
            raise SettingsError(
                f"{run.path} is adapted from {run.parent_path}: an ensemble's members are "
                "trained runs. Adapt the ensemble's members one by one and combine the adapted "
                "runs, all adapted to the same photos, or give trained runs."
            )
        if get_model(run.model_kind).members is not None:
            raise SettingsError(
                f"{run.path} is itself an ensemble: give its members instead "
                f"({', '.join(run.settings['params'].get('members') or [])})."
            )
    return runs


def _aligned(runs: list[Run]) -> list[HeldOut]:
    """Every member's held-out photos in the first member's order, refused naming what
    differs: grades, their order, photos, folds, fruits or true grades."""
    first = runs[0]
    found = []
    for run in runs:
        if run.grades != first.grades or run.ordered != first.ordered:
            kind = lambda r: "ordered grades" if r.ordered else "unordered classes"  # noqa: E731
            raise SettingsError(
                f"{run.path} grades {', '.join(run.grades)} ({kind(run)}); {first.path} grades "
                f"{', '.join(first.grades)} ({kind(first)}): members must grade the same "
                "grades in the same order. Train them on the same labels."
            )
        held = run.held_out
        if held is None:
            raise SettingsError(
                f"{run.path} has no held-out photos (predictions.csv): an ensemble is made of "
                "runs trained with cross-validation (--cv) on the same photos."
            )
        found.append(held)
    base = found[0]
    order = {image: i for i, image in enumerate(base.image_ids)}
    aligned = [base]
    for run, held in zip(runs[1:], found[1:], strict=True):
        if sorted(held.image_ids) != sorted(base.image_ids):
            extra = sorted(set(held.image_ids) ^ set(base.image_ids))[:3]
            raise SettingsError(
                f"{run.path} and {first.path} held out different photos (e.g. "
                f"{', '.join(extra)}): members must be trained on the same photos. Train "
                "both on the same data folder."
            )
        at = np.array([order[image] for image in held.image_ids])
        back = np.empty_like(at)
        back[at] = np.arange(len(at))
        same = HeldOut(
            image_ids=list(base.image_ids),
            groups=None if held.groups is None else [held.groups[i] for i in back],
            folds=held.folds[back],
            true=held.true[back],
            predicted=held.predicted[back],
            proba=held.proba[back],
            grades=held.grades,
        )
        for what, theirs, ours in (("folds", same.folds, base.folds),
                                   ("fruit groups", same.groups, base.groups),
                                   ("true grades", same.true, base.true)):  # fmt: skip
            if not np.array_equal(np.asarray(theirs, dtype=object), np.asarray(ours, dtype=object)):
                raise SettingsError(
                    f"{run.path} and {first.path} differ in their {what}: members must be "
                    "trained on the same photos, labels, fruit groups (--groups) and folds "
                    "(--cv, --seed). Train them again alike."
                )
        aligned.append(same)
    return aligned


def _fruits(held: HeldOut, rows: np.ndarray) -> Fruits:
    groups = held.groups
    ids = [held.image_ids[i] for i in rows]
    return Fruits.from_ids([groups[i] for i in rows] if groups else ids, ids)


def _fruit_nll(members: np.ndarray, weights: np.ndarray, true: np.ndarray, fruits: Fruits,
               rule: str) -> float:  # fmt: skip
    proba = combine(np.einsum("nmg,m->ng", members, weights), fruits, rule)
    truth, _ = fruit_labels(true, fruits)
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(truth)), truth], _FLOOR, 1.0))))


def _grid(n: int) -> list[np.ndarray]:
    steps = GRID if n == 2 else max(4, GRID // (2 * (n - 1)))
    return [np.array(c) / steps for c in itertools.product(range(steps + 1), repeat=n)
            if sum(c) == steps]  # fmt: skip


def _best_weights(members: np.ndarray, held: HeldOut, rows: np.ndarray, rule: str) -> np.ndarray:
    """The grid's weights that give the fruits of photos ``rows`` the highest likelihood
    (ties: the most even)."""
    fruits = _fruits(held, rows)
    grid = _grid(members.shape[1])
    scored = [
        (_fruit_nll(members[rows], w, held.true[rows], fruits, rule), float(np.ptp(w)), i)
        for i, w in enumerate(grid)
    ]
    return grid[min(scored)[2]]


def fold_weights(members: np.ndarray, held: HeldOut, mode: str, rule: str
                 ) -> tuple[dict[int, np.ndarray], np.ndarray]:  # fmt: skip
    """Each fold's weights and the weights chosen on every fold (``fit``: each fold's on
    the other folds' fruits only)."""
    n = members.shape[1]
    folds = sorted(set(int(f) for f in held.folds))
    if mode == "equal":
        even = np.full(n, 1 / n)
        return {k: even for k in folds}, even
    every = np.arange(len(held.folds))
    per_fold = {k: _best_weights(members, held, every[held.folds != k], rule) for k in folds}
    return per_fold, _best_weights(members, held, every, rule)


def _settings(runs: list[Run], labels: list[str], sizes: list[int], weights: np.ndarray,
              mode: str, preset: str | None, paths: list[str]) -> Settings:  # fmt: skip
    first = runs[0].settings
    keep = ("seed", "decision", "abstain", "fruit", "familiar", "split")
    settings: Settings = {"model": "ensemble", "preset": preset}
    settings.update({k: first[k] for k in keep if k in first})
    settings["calibration"] = "temperature"
    settings["features"] = {"size": max(sizes)}
    settings["params"] = {"members": labels, "sizes": sizes,
                          "weights": [round(float(w), 6) for w in weights],
                          "weights_rule": mode}  # fmt: skip
    settings["ensemble"] = [
        {"run": path, "family": run.model_kind, "preset": run.settings.get("preset")}
        for run, path in zip(runs, paths, strict=True)
    ]
    return settings


def _member_sizes(runs: list[Run]) -> list[int]:
    sizes = []
    for run in runs:
        geometry = run.geometry()
        if not isinstance(geometry, Resize):
            raise SettingsError(
                f"{run.path}: its photos are cropped when decoded; an ensemble's members must "
                "decode at a plain square size."
            )
        sizes.append(geometry.size)
    return sizes


def _either(bundles: list[Any]) -> EitherFamiliarity | None:
    """The fold's familiarity: each member's own model (None: a member has none)."""
    stored = [split_arrays(b.familiarity)[0] for b in bundles]
    if any(a is None for a in stored):
        return None
    models = tuple(FamiliarityModel.from_arrays(a) for a in stored)  # type: ignore[arg-type]
    return EitherFamiliarity(models, tuple(int(m.center.shape[0]) for m in models))


def _assemble(runs: list[Run], stage: Path, mode: str, preset: str | None,
              paths: list[str], progress: Any = None) -> EnsembleResult:  # fmt: skip
    """Write the ensemble of ``runs`` into ``stage`` (see the module's docstring)."""
    started = time.perf_counter()
    held = _aligned(runs)
    labels = _labels(runs)
    sizes = _member_sizes(runs)
    base = held[0]
    members = np.stack([h.proba for h in held], axis=1)  # (photos, members, grades)
    rule = fruit_rule(runs[0].settings)
    per_fold, overall = fold_weights(members, base, mode, rule)
    settings = _settings(runs, labels, sizes, overall, mode, preset, paths)
    data = runs[0].settings.get("data") or {}
    folder.write_config(stage, folder.run_config(settings, data, runs[0].ordered))
    proba = np.zeros((len(base.folds), len(base.grades)))
    for k, w in per_fold.items():
        rows = base.folds == k
        proba[rows] = np.einsum("nmg,m->ng", members[rows], w)
    grades = tuple(base.grades)
    classes = np.arange(len(grades))
    folds = sorted(per_fold)
    references: list[np.ndarray] | None = []
    for k in folds:
        bundles = [run.bundles(k)[0] for run in runs]
        temperatures = [run.temperature(k) for run in runs]
        model = RunMean(labels, [float(w) for w in per_fold[k]], sizes, temperatures)
        model.joined([b.model for b in bundles], classes)
        either = _either(bundles)
        arrays = {**({} if either is None else either.arrays()), **_not_a_fruit(bundles)}
        if either is None or references is None:
            references = None
        elif either.reference is not None:
            references.append(either.reference)
        record = {"fold": k, "n_held_out": int(np.sum(base.folds == k)),
                  "weights": [float(w) for w in per_fold[k]], "members": labels}  # fmt: skip
        folder.save_fold_model(stage, f"fold-{k}", model, settings, grades,
                               Resize(max(sizes)), record, arrays or None)  # fmt: skip
    metrics = _write_results(stage, settings, base, proba, runs, labels)
    metrics["weights"] = {
        "rule": mode,
        "chosen": [float(w) for w in overall],
        "per_fold": {str(k): [float(x) for x in w] for k, w in per_fold.items()},
    }
    metrics["familiar"] = _familiar_record(references)
    folder.write_json(stage, "metrics.json", metrics)
    timing = {
        "assemble_s": time.perf_counter() - started,
        "versions": library_versions(),
        "members": {label: run.timing for label, run in zip(labels, runs, strict=True)},
    }
    folder.write_json(stage, "timing.json", timing)
    notices = [n for run in runs for n in run.metrics.get("warnings", [])]
    return EnsembleResult(stage, metrics, labels, [float(w) for w in overall], notices)


def _not_a_fruit(bundles: list[Any]) -> dict[str, np.ndarray]:
    """The first member's not-a-fruit check that there is (the members were trained on
    the same photos, so each one's check knows the same mangoes)."""
    for bundle in bundles:
        check = split_arrays(bundle.familiarity)[1]
        if check is not None:
            return check
    return {}


def _labels(runs: list[Run]) -> list[str]:
    names = [run.name for run in runs]
    return [n if names.count(n) == 1 else f"{n}-{i}" for i, n in enumerate(names)]


def _familiar_record(references: list[np.ndarray] | None) -> dict[str, Any]:
    if references is None:
        return {"method": None, "note": "no familiarity model: a member has none"}
    scores = np.concatenate(references) if references else np.zeros(0)
    return {"method": "either: a photo is unfamiliar when any member finds it so",
            "threshold": 1.0,
            "held_out_flagged": float(np.mean(scores > 1.0)) if len(scores) else None,
            "n_held_out": int(len(scores))}  # fmt: skip


def _write_results(stage: Path, settings: Settings, held: HeldOut, proba: np.ndarray,
                   runs: list[Run], labels: list[str]) -> dict[str, Any]:  # fmt: skip
    """calibration.json, predictions.csv, fruits.csv; metrics.json's figures."""
    true, folds = held.true, held.folds
    before = calibration(true, proba)["ece"]
    if held.groups is not None:
        # The members' probabilities are calibrated already; the ensemble's own temperature
        # is fit on out-of-fold fruits (a photo temperature first would reweigh each
        # fruit's photos: measured, it cost a fruit of mango-grading's 170).
        scaled, per_fold, overall = proba, {}, None
    else:
        scaled, per_fold, overall = cross_fit(proba, true, folds)
    decision = settings.get("decision", "argmax")
    predicted = decide(scaled, decision)
    calibrated: dict[str, Any] = {
        "method": "temperature", "temperature": overall,
        "per_fold": {str(k): v for k, v in per_fold.items()},
        "ece_before": before, "ece_after": calibration(true, scaled)["ece"],
    }  # fmt: skip
    root = Path((runs[0].settings.get("data") or {}).get("root") or ".")
    dataset = Dataset(root, "ensemble", tuple(held.image_ids),
                      tuple(root / i for i in held.image_ids), tuple(held.grades), true,
                      None if held.groups is None else tuple(held.groups),
                      ordered=runs[0].ordered)  # fmt: skip
    folder.write_predictions(stage, dataset, folds, scaled, predicted)
    numbers = sorted({int(k) for k in folds})
    right = [int(np.sum(predicted[folds == k] == true[folds == k])) for k in numbers]
    sizes = [int(np.sum(folds == k)) for k in numbers]
    metrics: dict[str, Any] = {
        "accuracy": float(np.mean(predicted == true)),
        "accuracy_std": float(np.std([r / n for r, n in zip(right, sizes, strict=True)])),
        "accuracy_folds": [r / n for r, n in zip(right, sizes, strict=True)],
        "n_images": len(true), "n_held_out": len(true), "n_folds": len(sizes),
        "grades": list(held.grades), "n_skipped": 0,
    }  # fmt: skip
    if settings.get("abstain") is not None:
        metrics["abstain"] = abstained(true, predicted, scaled, settings["abstain"])
    if held.groups is not None:
        every = np.arange(len(true))
        level = fruit_level(true, scaled, folds, _fruits(held, every), fruit_rule(settings),
                            decision, calibrate=True)  # fmt: skip
        record = evaluate(level.true, level.predicted, held.grades, level.proba,
                          n_boot=FRUIT_BOOTSTRAP, seed=int(settings.get("seed", 0)),
                          ordered=runs[0].ordered)  # fmt: skip
        metrics["fruit"] = headline(record, settings.get("abstain"), level)
        folder.write_fruit_predictions(stage, level, held.grades)
        calibrated["fruit"] = level.temperature
    folder.write_json(stage, folder.CALIBRATION, calibrated)
    metrics["members"] = {
        label: run.headline_metrics for label, run in zip(labels, runs, strict=True)
    }
    return metrics


def make_ensemble(
    runs: Sequence[str | Path],
    out: str | Path,
    weights: str = "equal",
    overwrite: bool = False,
    progress: bool | None = None,
) -> EnsembleResult:
    """The ensemble of ``runs`` written as the run folder ``out`` (staged, then renamed
    into place, as ``train`` writes a run)."""
    if weights not in WEIGHTS:
        raise SettingsError(f"--weights must be {' or '.join(WEIGHTS)}, got {weights!r}.")
    members = open_members(runs)
    out = claim_folder(Path(out), runs=[m.path for m in members])
    paths = [str(m.path.resolve()) for m in members]
    with RunLock(out):
        stage = staging.prepare_stage(out, overwrite, False)
        try:
            result = _assemble(members, stage, weights, None, paths, progress)
            staging.publish(stage, out, uuid.uuid4().hex)
        except BaseException:
            staging.discard_stage(stage, keep_checkpoints=False)
            raise
    result.out = out
    return result


def member_settings(name: str, settings: Settings) -> Settings:
    """A member's settings: its preset (or family), with the ensemble's seed, folds, fruit
    rule, familiarity, decision, abstain and calibration, so every member holds out the
    same photos and calibrates alike."""
    from ..models.registry import preset_names, resolve

    shared = ("seed", "split", "fruit", "familiar", "decision", "abstain", "calibration")
    overrides = {k: settings[k] for k in shared if k in settings}
    overrides["calibration"] = "temperature"
    named = {"preset_name": name} if name in preset_names() else {"model": name}
    member = resolve(**named, overrides=overrides)
    if get_model(member["model"]).members is not None:
        raise SettingsError(f"An ensemble's member {name!r} is itself an ensemble.")
    return member


def train_ensemble(
    settings: Settings,
    dataset: Dataset,
    out: str | Path,
    data_record: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    on_member: Any = None,
    **options: Any,
) -> EnsembleResult:
    """Train each member (``settings["params"]["members"]``, presets or families) on the
    same folds into ``out/members/NAME``, then write their ensemble into ``out``.
    ``on_member(number, total, name)`` is told as each member starts; ``options`` go to
    every member's ``train_run`` (cache, skip_bad, backend, scheduler)."""
    from .train import train_run

    names = get_model(settings["model"]).members(settings)  # type: ignore[misc]
    if len(set(names)) != len(names):
        raise SettingsError(f"An ensemble's members must differ, got {names}.")
    mode = settings["params"].get("weights_rule", "equal")
    members = [member_settings(name, settings) for name in names]  # refused before any work
    out = claim_folder(Path(out), inputs=[dataset.root])
    with RunLock(out):
        stage = staging.prepare_stage(out, overwrite, False)
        try:
            runs = []
            for number, (name, member) in enumerate(zip(names, members, strict=True), 1):
                if on_member is not None:
                    on_member(number, len(names), name)
                where = stage / MEMBERS / name
                train_run(member, dataset, where, progress=progress, data_record=data_record,
                          **options)  # fmt: skip
                runs.append(open_run(where))
            paths = [f"{MEMBERS}/{name}" for name in names]
            result = _assemble(runs, stage, mode, settings.get("preset"), paths, progress)
            staging.publish(stage, out, uuid.uuid4().hex)
        except BaseException:
            staging.discard_stage(stage, keep_checkpoints=False)
            raise
    result.out = out
    return result
