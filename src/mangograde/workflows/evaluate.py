"""``evaluate``'s work: grade a labelled photo set with a run and measure it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.errors import DatasetError
from ..data import Dataset
from ..evaluation import FruitLevel, evaluate, headline
from ..evaluation.fruits import fruit_labels
from ..graders import Graded, Grader, grade_batch
from ..images import ImageCache
from .predict import decode_photos, familiar_record, not_a_fruit_record


def match_grades(
    run_grades: Sequence[str], dataset: Dataset, ordered: bool = True
) -> tuple[Dataset, list[str]]:
    """The dataset with its labels in the run's grade codes, and how they were matched.

    The same names match by name, whatever order the data lists them in. Other names match
    by rank when both are grades best-first (a run trained on Extra_Class / Class_I /
    Class_II scores photos labelled A / B / C); classes with no order only match by name.
    """
    if not dataset.labelled:
        raise DatasetError(
            f"{dataset.root} has no grades to evaluate against: give a label CSV (--labels) "
            "or grade folders. To grade unlabelled photos, use `mangograde predict`."
        )
    if set(dataset.grades) <= set(run_grades):
        return dataset.in_grade_order(tuple(run_grades)), []
    what = "grades" if ordered else "classes"
    if not ordered or len(dataset.grades) != len(run_grades):
        raise DatasetError(
            f"The run's {what} are {', '.join(run_grades)} but {dataset.root} is labelled "
            f"{', '.join(dataset.grades)}. Evaluate on photos labelled with the run's "
            f"{what}" + (", or as many grades best-first (--grades)." if ordered else ".")
        )
    pairs = ", ".join(f"{d} = {r}" for d, r in zip(dataset.grades, run_grades, strict=True))
    return replace(dataset, grades=tuple(run_grades)), [
        f"Grades matched by rank, best first: {pairs}."
    ]


def seen_in_training(data_root: Path | None, dataset: Dataset) -> list[str]:
    """A notice when the photos to evaluate come from the folder the run was trained on."""
    if data_root is None or Path(data_root).resolve() != Path(dataset.root).resolve():
        return []
    return [
        f"{dataset.root} is the folder this run was trained on: its models have seen these "
        "photos (every fold model but one saw each of them), so these scores are inflated. "
        "The run's own held-out scores are in its metrics.json; `mangograde compare` shows "
        "them with intervals."
    ]


def evaluate_dataset(
    predictor: Grader,
    dataset: Dataset,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    progress: bool | None = None,
    trained_on: Path | None = None,
    ordered: bool = True,
) -> tuple[dict[str, Any], Graded]:
    """Grade a labelled dataset and measure it (bootstrap by fruit when it has groups).

    ``trained_on``: the run's data folder, to warn when these are its training photos;
    ``ordered``: False for a run of classes with no order.
    """
    dataset, matched = match_grades(predictor.grades, dataset, ordered)
    matched += seen_in_training(trained_on, dataset)
    images, kept, bad, notices = decode_photos(predictor, dataset.paths, cache, skip_bad, progress)
    kept_set = dataset.subset(kept)
    fruits = None if kept_set.groups is None else list(kept_set.groups)
    graded = grade_batch(predictor, images, list(kept_set.image_ids), fruits, progress=progress)
    graded.paths, graded.bad, graded.truth = list(kept_set.paths), bad, kept_set.labels
    graded.notices = matched + notices + graded.notices
    record = evaluate(
        kept_set.labels,
        graded.predicted,
        dataset.grades,
        graded.proba,
        kept_set.groups,
        n_boot,
        0.95,
        seed,
        ordered,
    )
    record["n_skipped"] = len(bad)
    record["notices"] = matched
    if graded.fruit_ids is not None:
        record["fruit"] = evaluate_fruits(graded, n_boot, seed, ordered)
    familiar = familiar_record(predictor, graded)
    if familiar is not None:
        record["familiar"] = familiar
    foreign = not_a_fruit_record(predictor, graded)
    if foreign is not None:
        record["not_a_fruit"] = foreign
    return record, graded


def evaluate_fruits(
    graded: Graded, n_boot: int = 2000, seed: int = 0, ordered: bool = True
) -> dict[str, Any]:
    """The fruit level of labelled graded photos: every metric of the fruits, as the
    grader grades them (its fruit rule, temperature and decision), and the headline."""
    assert graded.truth is not None
    rule = graded.rule
    fruits = graded.as_fruits()
    truth, mixed = fruit_labels(graded.truth, fruits.fruits)
    record = evaluate(truth, fruits.predicted, graded.grades, fruits.proba,
                      None, n_boot, 0.95, seed, ordered)  # fmt: skip
    level = FruitLevel(fruits.fruits, truth, np.zeros(len(truth), dtype=int), fruits.proba,
                       fruits.predicted, rule.fruit, mixed)  # fmt: skip
    record["headline"] = headline(record, rule.abstain, level)
    if mixed:
        record["warnings"].append(
            f"{mixed} fruits have photos labelled with different grades; each is scored "
            "against its photos' most frequent grade (ties: the worse)."
        )
    return record
