"""``data familiar``'s work: before a line starts, how unlike the run's training photos
a set of photos is (the share flagged, how well the scores tell them apart from the run's
own held-out photos, whether the batch drifted) and, with labels, what it costs."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.atomic import atomic_open
from ..basics.errors import SettingsError
from ..data import find_photos
from ..evaluation.familiarity import auroc
from ..graders import Graded, Grader
from ..images import ImageCache
from .predict import familiar_record, grade_found


@dataclass
class FamiliarReport:
    graded: Graded
    reference: np.ndarray  # the run's held-out photos' scores, each by its own fold model
    record: dict[str, Any]  # :func:`familiar_record`: shares, drift, accuracy either side

    @property
    def scores(self) -> np.ndarray:
        """Each photo's score (the mean over the fold models)."""
        assert self.graded.familiarity is not None
        return self.graded.familiarity

    @property
    def flagged(self) -> np.ndarray:
        assert self.graded.unfamiliar is not None
        return self.graded.unfamiliar

    @property
    def auroc(self) -> float:
        return auroc(self.reference, self.scores)


def check_familiar(
    predictor: Grader,
    inputs: Sequence[str | Path],
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    truth: dict[str, int] | None = None,
) -> FamiliarReport:
    """Grade ``inputs`` with a run's predictor and score how familiar they look.
    ``truth``: grade codes by image id, to measure the accuracy on flagged photos."""
    if predictor.familiarity is None:
        raise SettingsError(
            "This run has no familiarity model (it was trained before mangograde kept one, "
            "or its family gives no features): train it again to check photos against it."
        )
    graded = grade_found(predictor, *find_photos(inputs), cache, skip_bad, progress)
    if truth is not None:
        missing = [i for i in graded.image_ids if i not in truth]
        if missing:
            raise SettingsError(
                f"{len(missing)} photos have no label, e.g. {', '.join(missing[:3])}: give "
                "a label for every photo, or leave --labels out."
            )
        graded.truth = np.array([truth[i] for i in graded.image_ids])
    reference = np.concatenate([m.reference for m in predictor.familiarity.models])
    record = familiar_record(predictor, graded)
    assert record is not None
    return FamiliarReport(graded, reference, record)


def write_scores(path: Path, report: FamiliarReport) -> Path:
    """One row a photo: its id, score, whether it is unfamiliar, its grade."""
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "familiarity", "unfamiliar", "grade"])
        grades = report.graded.grades
        for image_id, score, flag, code in zip(report.graded.image_ids, report.scores,
                                                report.flagged, report.graded.predicted,
                                                strict=True):  # fmt: skip
            writer.writerow([image_id, f"{score:.4f}", "yes" if flag else "no", grades[code]])
    return path
