"""``mangograde adapt``: a run moved to a new camera, orchard or variety with a few
labelled photos, written as a new run that names its parent.

Each fold model is adapted by its family's ``adapt_fold`` (networks: BatchNorm statistics
measured on the new photos, then a short fine-tuning, of the whole network or of its last
layer; classical families: a refit on the fold's training photos and the new ones,
weighted, on features made once: see :mod:`.adapt_pool`).

With labels for ``MEASURED_FROM`` photos or more (or ``cv``), the adaptation is measured
on the new photos' own parts: adapt on K-1 parts, grade the held-out part, beside the
parent unadapted and the family's recipe trained from scratch on the same K-1 parts. The
``keep`` rule then writes the adapted run or the one trained from scratch (its part models
as its folds), whichever graded the held-out parts better (ties keep the adapted run).

The adapted run's familiarity model counts the new photos as familiar
(:mod:`mangograde.runs.familiar_adapted`); with parts, it is also built on each part's K-1
others, its threshold on their own parts, so the held-out new photos it flags are counted
honestly.
"""

from __future__ import annotations

import copy
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import SettingsError, plural
from ..basics.outputs import claim_folder
from ..basics.progress import track
from ..data.splits import kfold
from ..evaluation.familiarity import Familiarity, FamiliarityModel, familiarity_from_arrays
from ..evaluation.not_a_fruit import (
    ADAPTED_MARGIN,
    NO_CHECK,
    NotAFruitModel,
    split_arrays,
)
from ..evaluation.temperature import apply_temperature, fit_temperature
from ..images import ImageCache
from ..models.bundle import Bundle
from ..models.registry import ModelFamily, get_model
from ..runs import folder, staging
from ..runs.familiar import familiar_quantile, fit_familiarity
from ..runs.familiar_adapted import adapted_familiarity, new_photo_flags
from ..runs.folder import Run, open_run
from ..runs.lock import RunLock
from .adapt_pool import (
    Adapter,
    NewPhotos,
    Pool,
    PoolFeatures,
    adapter,
    one_blas_thread,
    parent_photos,
)

__all__ = ["AdaptResult", "NewPhotos", "adapt_run", "adapt_settings", "check_grades"]
_parent_photos = parent_photos  # benchmarks/bench_adapt.py's name for it

# None: the family's own default (networks: see models/families/cnn.py, measured in RESULTS.md)
DEFAULTS = {"epochs": None, "lr": None, "body": None, "weight": None}
KEEPS = ("best", "adapted", "scratch")
MEASURED_FROM = 20  # labelled new photos from which the keep rule measures by parts
PARTS = 5  # parts of the new photos when --cv does not say


@dataclass
class AdaptResult:
    """What :func:`adapt_run` wrote: the run's folder, the measurement by parts (None when
    not measured), which run was kept (``adapted`` or ``scratch``) and the line that says
    why, the familiarity record, and notices for the user."""

    out: Path
    comparison: dict[str, Any] | None  # by parts: parent, adapted and scratch, same photos
    notices: list[str] = field(default_factory=list)
    kept: str = "adapted"
    said: str | None = None
    familiar: dict[str, Any] | None = None
    not_a_fruit: dict[str, Any] | None = None  # the adapted check's record


def adapt_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    settings = {**DEFAULTS, **overrides}
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise SettingsError(f"Unknown adapt setting {', '.join(unknown)}: the adapt section "
                            f"takes {', '.join(DEFAULTS)}.")  # fmt: skip
    epochs, lr = settings["epochs"], settings["lr"]
    if epochs is not None and not (isinstance(epochs, int) and epochs >= 1):
        raise SettingsError(
            f"adapt.epochs must be a whole number of at least 1, got {settings['epochs']!r}."
        )
    if lr is not None and not (isinstance(lr, (int, float)) and 0 < lr < 1):
        raise SettingsError(f"adapt.lr must be above 0 and below 1, got {settings['lr']!r}.")
    weight = settings["weight"]
    if weight is not None and not (isinstance(weight, (int, float)) and weight >= 1):
        raise SettingsError(f"adapt.weight must be at least 1, got {weight!r}.")
    if settings["body"] not in (None, "frozen", "train"):
        raise SettingsError(f"adapt.body must be frozen or train, not {settings['body']!r}.")
    return settings


def check_grades(codes: np.ndarray, grades: tuple[str, ...]) -> list[str]:
    """Refuse a grade with a single photo; say which of the run's grades have none."""
    counts = np.bincount(codes, minlength=len(grades))
    few = [g for g, n in zip(grades, counts, strict=True) if n == 1]
    if few:
        said = ", ".join(f"{g} (1)" for g in few)
        raise SettingsError(
            f"Adapting needs at least 2 photos of each grade it is given; {said} has one: "
            f"label 1 more photo of {' and 1 more of '.join(few)} (`mangograde suggest RUN "
            "PHOTOS` lists the photos the run is least sure of, the ones worth labelling), "
            "or leave that grade out."
        )
    missing = [g for g, n in zip(grades, counts, strict=True) if n == 0]
    return [f"No photo of {', '.join(missing)} among the labelled photos: the adapted run "
            "learns nothing new of it."] if missing else []  # fmt: skip


def parts_to_measure(keep: str, new: NewPhotos, cv: int | None) -> tuple[int | None, list[str]]:
    """How many parts of the new photos the keep rule (or ``cv``) measures on (None: no
    measurement), and what the user should know; refuses a bad ``keep``."""
    if keep not in KEEPS:
        raise SettingsError(
            f"--keep must be best, adapted or scratch, not {keep!r}: best keeps whichever of "
            "the adapted run and the recipe trained from scratch grades the new photos' "
            "held-out parts better; adapted or scratch keeps that one."
        )
    labelled = 0 if new.codes is None else len(new.codes)
    if new.codes is None and (cv is not None or keep == "scratch"):
        wants = "--cv" if cv is not None else "--keep scratch"
        raise SettingsError(f"{wants} measures against grades: it needs --labels "
                            "(not --unlabelled).")  # fmt: skip
    if keep == "scratch" and labelled < MEASURED_FROM:
        raise SettingsError(
            f"--keep scratch trains the family's recipe on the new photos alone, measured by "
            f"parts: it needs labels for at least {MEASURED_FROM} photos, and "
            f"{plural(labelled, 'photo is', 'photos are')} labelled. Label more (`mangograde "
            "suggest RUN PHOTOS` lists the ones worth labelling), or keep the adapted run "
            "(--keep adapted)."
        )
    said = []
    if keep == "best" and new.codes is not None and labelled < MEASURED_FROM:
        said.append(f"Kept the adapted run without choosing: measuring it against the "
                    f"family's recipe trained from scratch needs labels for at least "
                    f"{MEASURED_FROM} photos ({labelled} given).")  # fmt: skip
    if cv is not None:
        return cv, said
    if keep == "adapted" or labelled < MEASURED_FROM:
        return None, said
    assert new.codes is not None
    fewest = min(_fruits(new, grade) for grade in np.unique(new.codes))
    if fewest < 2:
        if keep == "scratch":
            raise SettingsError("--keep scratch measures by parts, and a grade of the new "
                                "photos has one fruit: label photos of another fruit.")  # fmt: skip
        return None, [*said, "Kept the adapted run without choosing: a grade of the new "
                      "photos has a single fruit, so no parts can be measured."]  # fmt: skip
    return min(PARTS, fewest), said


def _fruits(new: NewPhotos, grade: int) -> int:
    assert new.codes is not None
    rows = new.codes == grade
    return len(np.unique(new.groups[rows])) if new.groups is not None else int(rows.sum())


def adapt_run(
    parent_dir: Path,
    new: NewPhotos,
    out: Path,
    overrides: dict[str, Any] | None = None,
    cv: int | None = None,
    fold: int | None = None,
    cache: ImageCache | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
    keep: str = "best",
    rejects: np.ndarray | None = None,
) -> AdaptResult:
    """Adapt the run in ``parent_dir`` to ``new`` and write the kept run in ``out``.

    Parameters
    ----------
    parent_dir : Path
        The run to adapt (its fold models, and its photos when still readable).
    new : NewPhotos
        The new photos, decoded at the parent's geometry, with their grades or None.
    out : Path
        The folder of the run written (refused inside the photos or the parent).
    overrides : dict, optional
        The ``adapt`` section (``epochs``, ``lr``, ``body``, ``weight``).
    cv : int, optional
        Parts to measure on (default: ``PARTS`` when the keep rule measures).
    fold : int, optional
        Adapt the parent's fold ``fold`` alone.
    keep : {"best", "adapted", "scratch"}
        Which run to write: ``best`` measures the adapted run against the family's recipe
        trained from scratch on the new photos' parts (labels for ``MEASURED_FROM``
        photos or more) and keeps the better; ties keep the adapted run.
    rejects : np.ndarray, optional
        Decoded photos of what to reject, taught to the not-a-fruit check with the
        parent's.

    Returns
    -------
    AdaptResult
        The folder, the measurement by parts, the run kept and why, the familiarity record.
    """
    parent = open_run(parent_dir)
    roots = [r for r in (new.dataset.root, parent.data_root) if r is not None and r.is_dir()]
    out = claim_folder(Path(out), "--out", roots, runs=[parent_dir])  # before any work
    family = get_model(parent.model_kind)
    settings = adapt_settings(overrides or {})
    n_parts, said = parts_to_measure(keep, new, cv)
    bundles = parent.bundles(fold)
    geometry = folder.geometry_from_record(bundles[0].manifest["preprocessing"]["geometry"])
    notices = [*([] if new.codes is None else check_grades(new.codes, parent.grades)), *said]
    old = parent_photos(parent, geometry, cache, progress)
    if old is None:
        notices.append(f"The parent's photos ({parent.data_root}) cannot be read: the "
                       "adapted run learns from the new photos alone and keeps no "
                       "familiarity model.")  # fmt: skip
    folds = [int(b.manifest.get("fold", i)) for i, b in enumerate(bundles)]
    with one_blas_thread(family):  # the many small fits: see adapt_pool
        pool = Pool.of(family, parent.settings, old, new)
        quantile = familiar_quantile(parent.settings)
        familiar = None if old is None else PoolFeatures(family, pool, quantile)
        adapt = adapter(family, parent, pool, settings, progress)
        groups = None if new.groups is None else list(new.groups)
        parts = None if n_parts is None else kfold(new.codes, n_parts, groups, 0)  # type: ignore[arg-type]
        measured = None
        if parts is not None:
            models = [b.model for b in bundles]
            measured = _measure(parent, family, models, folds, pool, parts, adapt, familiar,
                                progress)  # fmt: skip
        comparison = None if measured is None else measured.comparison
        kept, line = choose_run(keep, comparison, 0 if new.codes is None else len(new.codes))
        if kept == "scratch":
            assert measured is not None and parts is not None
            written = _scratch(family, pool, measured, parts, quantile)
        else:
            steps = track(zip(bundles, folds, strict=True), len(bundles),
                          "Adapting the fold models", progress)  # fmt: skip
            everything = np.arange(len(new.images))
            adapted = [adapt(b.model, n, everything) for b, n in steps]
            tests = [t for _, t in parts] if parts is not None else _familiar_parts(new)
            written = _adapted(bundles, folds, adapted, familiar, tests, measured, parent, fold)
        if written.familiar is None and old is not None:
            notices.append("This family gives no features: the run has no familiarity model.")
        record = _familiar_record(written.record, family, bundles, pool, parent, measured)
        parts_of_new = [t for _, t in parts] if parts is not None else _familiar_parts(new)
        check, check_record = _adapted_check(bundles, pool, parts_of_new, rejects)
        if check_record.get("method") is not None and measured is not None:
            measured.comparison["not_a_fruit"] = {
                k: check_record[k] for k in ("held_out_new_flagged", "parent_flags_new_photos")
            }
    with RunLock(out):
        stage = staging.prepare_stage(out, overwrite, False)
        try:
            _write(stage, parent, written, settings, new, comparison, record, geometry,
                   {"rule": keep, "kept": kept}, (check, check_record))  # fmt: skip
            staging.publish(stage, out, uuid.uuid4().hex)
        except BaseException:
            staging.discard_stage(stage, keep_checkpoints=False)
            raise
    return AdaptResult(out, comparison, notices, kept, line, record, check_record)


@dataclass
class _Measured:
    comparison: dict[str, Any]
    proba: dict[str, np.ndarray]  # out-of-part probabilities of each arm
    part_of: np.ndarray
    scratch: list[Any]  # each part's model trained from scratch
    flagged: np.ndarray | None  # held-out new photos the adapted familiarity flags


def _measure(
    parent: Run,
    family: ModelFamily,
    models: list[Any],
    folds: list[int],
    pool: Pool,
    parts: list[tuple[np.ndarray, np.ndarray]],
    adapt: Adapter,
    familiar: PoolFeatures | None,
    progress: bool | None,
) -> _Measured:
    """Adapt on K-1 parts, grade the held-out part: parent, adapted and scratch; and the
    held-out part's photos the familiarity adapted on the K-1 parts flags."""
    n, n_grades = len(pool.images) - pool.n_old, len(parent.grades)
    truth = pool.labels[pool.n_old :]
    proba = {k: np.zeros((n, n_grades)) for k in ("parent", "adapted", "scratch")}
    part_of, flagged, scratch = np.full(n, -1), np.zeros(n, bool), []
    tests = [test for _, test in parts]
    each = track(enumerate(parts), len(parts), f"{len(parts)} parts: adapting and training "
                 "from scratch on each", progress)  # fmt: skip
    for number, (train, test) in each:
        part_of[test] = number
        mine = [adapt(m, f, train) for m, f in zip(models, folds, strict=True)]
        proba["adapted"][test] = pool.grade(family, mine, test, n_grades)
        model = family.build(copy.deepcopy(parent.settings))
        family.attach(model, None, False, progress)
        family.fit_fold(model, pool.fold(pool.n_old + train, pool.n_old + test, groups=True))
        proba["scratch"][test] = pool.grade(family, [model], test, n_grades)
        scratch.append(model)
        found = (
            []
            if familiar is None
            else [familiar.features(m, f) for m, f in zip(mine, folds, strict=True)]
        )
        if found and all(f is not None for f in found):
            others = [t for j, t in enumerate(tests) if j != number]
            fitted, _ = adapted_familiarity(found, train, others, familiar.quantile)  # type: ignore[arg-type]
            flagged[test] = new_photo_flags(fitted, found, test)  # type: ignore[arg-type]
        else:
            familiar = None
    proba["parent"] = pool.grade(family, models, np.arange(n), n_grades)  # after any refusal
    comparison: dict[str, Any] = {"photos": int(n), "parts": len(parts)}
    for name, p in proba.items():
        predicted = p.argmax(axis=1)
        comparison[name] = {"accuracy": float(np.mean(predicted == truth)),
                            "mae": float(np.mean(np.abs(predicted - truth)))}  # fmt: skip
    return _Measured(comparison, proba, part_of, scratch, None if familiar is None else flagged)


_NAMES = {"adapted": "the adapted run",
          "scratch": "the family's recipe trained from scratch on the new photos"}  # fmt: skip


def choose_run(
    keep: str, comparison: dict[str, Any] | None, labelled: int
) -> tuple[str, str | None]:
    """Which run to write by the ``keep`` rule, and the line that says so.

    Parameters
    ----------
    keep : {"best", "adapted", "scratch"}
    comparison : dict or None
        The measurement by parts (``adapted`` and ``scratch``: ``accuracy``, ``mae``);
        None when nothing was measured. The choice is recorded in its ``keep``.
    labelled : int
        Labelled new photos: ``best`` chooses from ``MEASURED_FROM``.

    Returns
    -------
    kept : {"adapted", "scratch"}
        ``best`` keeps the higher accuracy on the held-out parts, then the lower mean
        grade error; a tie keeps the adapted run (it also knows the parent's photos).
    line : str or None
        Which was kept and by how much (None without a measurement).
    """
    if comparison is None:
        return ("scratch" if keep == "scratch" else "adapted"), None
    a, s = comparison["adapted"], comparison["scratch"]
    better = (a["accuracy"], -a["mae"]) > (s["accuracy"], -s["mae"])
    tie = (a["accuracy"], a["mae"]) == (s["accuracy"], s["mae"])
    if keep != "best":
        kept, why = keep, f"--keep {keep}"
    elif labelled < MEASURED_FROM:
        kept, why = "adapted", f"--keep best chooses from {MEASURED_FROM} labelled photos"
    elif tie:
        kept, why = "adapted", "a tie keeps the adapted run, which also knows the parent's photos"
    else:
        kept, why = ("adapted" if better else "scratch"), "the better on the held-out parts"
    other = "scratch" if kept == "adapted" else "adapted"
    by = comparison[kept]["accuracy"] - comparison[other]["accuracy"]
    comparison["keep"] = {"rule": keep, "kept": kept, "by": float(by), "why": why}
    k, o = comparison[kept], comparison[other]
    return kept, (f"Kept {_NAMES[kept]} ({why}): accuracy {k['accuracy']:.3f} on the "
                  f"held-out parts against {o['accuracy']:.3f} for {_NAMES[other]} ({by:+.3f}), "
                  f"mean grade error {k['mae']:.3f} against {o['mae']:.3f}.")  # fmt: skip


def _familiar_parts(new: NewPhotos) -> list[np.ndarray]:
    """Parts of the new photos (fruits kept whole) for the familiarity threshold alone."""
    fruits = len(new.images) if new.groups is None else len(np.unique(new.groups))
    k = min(PARTS, fruits)
    if k < 2:
        return []
    groups = None if new.groups is None else list(new.groups)
    return [test for _, test in kfold(np.zeros(len(new.images), int), k, groups, 0)]


@dataclass
class _Written:
    """What the run folder gets: its fold models and their records, familiarity models,
    the split (None: the parent's), out-of-part probabilities."""

    models: list[Any]
    folds: list[int]
    records: list[dict[str, Any]]
    familiar: list[FamiliarityModel] | None
    record: dict[str, Any] | None
    split: dict[str, Any] | None
    held: tuple[np.ndarray, np.ndarray] | None  # probabilities, part of each new photo


def _adapted(
    bundles: list[Bundle],
    folds: list[int],
    adapted: list[Any],
    familiar: PoolFeatures | None,
    tests: list[np.ndarray],
    measured: _Measured | None,
    parent: Run,
    fold: int | None,
) -> _Written:
    n = 0 if familiar is None else len(familiar.pool.images) - familiar.pool.n_old
    fitted, record = None, None
    if familiar is not None:
        found = [familiar.features(m, f) for m, f in zip(adapted, folds, strict=True)]
        if all(f is not None for f in found):
            fitted, record = adapted_familiarity(found, np.arange(n), tests, familiar.quantile)  # type: ignore[arg-type]
    records = [{k: b.manifest[k] for k in ("fold", "n_train", "n_held_out") if k in b.manifest}
               for b in bundles]  # fmt: skip
    split = parent.settings.get("split")
    if fold is not None and isinstance(split, dict) and split.get("cv"):
        split = {**split, "only_fold": folds[0]}  # one fold model: the run says which
    held = None if measured is None else (measured.proba["adapted"], measured.part_of)
    return _Written(adapted, folds, records, fitted, record, split, held)


def _scratch(
    family: ModelFamily,
    pool: Pool,
    measured: _Measured,
    parts: list[tuple[np.ndarray, np.ndarray]],
    quantile: float,
) -> _Written:
    """The run trained from scratch: each part's model a fold, its familiarity fit as a
    trained run's (on each fold model's features of its training photos)."""
    features = [family.embed_fold(m, pool.fold(pool.n_old + train, pool.n_old + test))
                for m, (train, test) in zip(measured.scratch, parts, strict=True)]  # fmt: skip
    fitted, record = None, None
    if all(f is not None for f in features):
        fitted, record = fit_familiarity(features, quantile)  # type: ignore[arg-type]
    records = [{"fold": i, "n_train": int(len(train)), "n_held_out": int(len(test))}
               for i, (train, test) in enumerate(parts)]  # fmt: skip
    split = {"cv": len(parts), "val_fraction": None, "only_fold": None}
    return _Written(measured.scratch, list(range(len(parts))), records, fitted, record, split,
                    (measured.proba["scratch"], measured.part_of))  # fmt: skip


def _familiar_record(
    record: dict[str, Any] | None,
    family: ModelFamily,
    bundles: list[Bundle],
    pool: Pool,
    parent: Run,
    measured: _Measured | None,
) -> dict[str, Any] | None:
    """The kept run's familiarity record; and, in the measurement's ``familiar``, how
    many held-out new photos the familiarity adapted on the other parts flags, beside the
    parent's flags of the new photos and of its own held-out photos."""
    own = parent.metrics.get("familiar")
    found: dict[str, Any] = {"parent_own_held_out_flagged": (own or {}).get("held_out_flagged")}
    arrays = [split_arrays(b.familiarity)[0] for b in bundles]
    rows = pool.n_old + np.arange(len(pool.images) - pool.n_old)
    embedded = [family.embed_fold(b.model, pool.fold(rows, rows[:1])) for b in bundles]
    if all(a is not None for a in arrays) and all(e is not None for e in embedded):
        stored = Familiarity(tuple(familiarity_from_arrays(a) for a in arrays))  # type: ignore[arg-type]
        scores = stored.scores([e[0] for e in embedded])  # type: ignore[index]
        found["parent_flags_new_photos"] = float(np.mean(stored.flags(scores)))
    if measured is not None and measured.flagged is not None:
        found["adapted_held_out_new_flagged"] = float(np.mean(measured.flagged))
        measured.comparison["familiar"] = found
    return None if record is None else {**record, **found}


def _adapted_check(
    bundles: list[Bundle],
    pool: Pool,
    parts_of_new: list[np.ndarray],
    reject_images: np.ndarray | None = None,
) -> tuple[NotAFruitModel | None, dict[str, Any]]:
    """The adapted run's not-a-fruit check: the parent's, with the new photos as a line of
    their own (so the new orchard is a mango like any other) and its reject photos kept;
    and how many held-out new photos a check made without their part flags, beside how
    many the parent's own check flags."""
    stored = split_arrays(bundles[0].familiarity)[1]
    if stored is None and reject_images is not None:
        raise SettingsError(
            "--reject-photos teaches the parent's not-a-fruit check, and this run has none "
            "(trained before it existed, or with familiar.not_a_fruit=false): train it again."
        )
    if stored is None:
        return None, {"method": None, "note": "the parent run has no not-a-fruit check"}
    from ..models.general_features import general_embedder

    before = NotAFruitModel.from_arrays(stored, "The parent run's familiarity.npz")
    found = general_embedder(before.weights_sha256)
    if found is None:
        return None, {"method": None, "note": NO_CHECK}
    embed, _ = found
    new = embed(pool.images[pool.n_old :])
    parts = np.full(len(new), -1, dtype=np.int64)
    for k, test in enumerate(parts_of_new):
        parts[np.asarray(test)] = k
    rejects, known = before.rejects, before.mangoes
    if reject_images is not None and len(reject_images):
        more = embed(reject_images)
        rejects = more if rejects is None else np.concatenate([rejects, more])
        if known is None:  # the parent's own photos, against which the rejects are told
            known = embed(pool.images[: pool.n_old])

    def made(inside: np.ndarray, line: bool = True) -> NotAFruitModel:
        check = before.with_line(new[inside], parts[inside], ADAPTED_MARGIN) if line else before
        if rejects is None or known is None:
            return check
        labels = np.concatenate([np.full(len(known), -1), parts[inside]])
        return check.with_rejects(np.concatenate([known, new[inside]]), rejects, labels)

    record: dict[str, Any] = {
        "n_new_photos": int(len(new)),
        "parent_flags_new_photos": float(before.flags(new).mean()),
    }
    labelled = np.unique(parts[parts >= 0])
    if len(labelled) < 2:
        note = "the new photos make fewer than two parts (one fruit, or too few photos)"
        kept = made(parts >= 0, line=False)
        return kept, {**kept.record(), **record, "held_out_new_flagged": None, "note": note}
    check = made(parts >= 0)
    held = None
    if len(labelled) >= 3:  # each part scored by a check made without it (2 parts left)
        flagged = [made((parts >= 0) & (parts != k)).flags(new[parts == k]) for k in labelled]
        held = float(np.concatenate(flagged).mean())
    record |= {"held_out_new_flagged": held, "new_parts": int(len(labelled))}
    return check, {**check.record(), **record}


def _write(
    stage: Path,
    parent: Run,
    written: _Written,
    settings: dict[str, Any],
    new: NewPhotos,
    comparison: dict[str, Any] | None,
    familiar_record: dict[str, Any] | None,
    geometry: Any,
    keep: dict[str, str],
    check: tuple[NotAFruitModel | None, dict[str, Any]] = (None, {}),
) -> None:
    run_settings = copy.deepcopy(parent.settings)
    if written.split is not None:
        run_settings["split"] = written.split
    data = new.dataset
    run_settings["data"] = {"root": str(data.root), "layout": data.layout,
                            "n_photos": int(len(new.images)), "synthetic": False}  # fmt: skip
    run_settings["adapt"] = {
        "parent": str(parent.path.resolve()), "parent_name": parent.name,
        "photos": str(data.root), "n_photos": int(len(new.images)),
        "labelled": new.codes is not None, "folds": [int(f) for f in written.folds],
        **settings, "keep": keep["rule"], "kept": keep["kept"],
    }  # fmt: skip
    folder.write_config(stage, run_settings)
    trained = {k: v for k, v in run_settings.items() if k not in folder.RECORDED}
    for i, (number, model) in enumerate(zip(written.folds, written.models, strict=True)):
        record = written.records[i] | {"adapted_on": int(len(new.images))}
        arrays = {**({} if written.familiar is None else written.familiar[i].arrays()),
                  **({} if check[0] is None else check[0].arrays())} or None  # fmt: skip
        name = folder.fold_name(number, run_settings) or "fold-0"
        folder.save_fold_model(stage, name, model, trained, parent.grades, geometry, record,
                               arrays)  # fmt: skip
    metrics: dict[str, Any] = {"adapt": comparison or {}, "familiar": familiar_record,
                               "not_a_fruit": check[1]}  # fmt: skip
    calibration = parent.path / folder.CALIBRATION
    if written.held is not None:
        proba, part_of = written.held
        if parent.settings.get("calibration") == "temperature":
            temperature = fit_temperature(proba, new.codes)
            proba = apply_temperature(proba, temperature)
            folder.write_json(stage, folder.CALIBRATION, {"method": "temperature",
                              "temperature": temperature, "per_fold": {}})  # fmt: skip
        predicted = proba.argmax(axis=1)
        metrics |= {"accuracy": float(np.mean(predicted == new.codes)),
                    "n_held_out": int(len(predicted)), "n_images": int(len(predicted))}  # fmt: skip
        folder.write_predictions(stage, data, part_of, proba, predicted)
    elif calibration.is_file():
        shutil.copyfile(calibration, stage / folder.CALIBRATION)
    folder.write_json(stage, "metrics.json", metrics)
    folder.write_json(stage, "timing.json", {})
