"""Metrics of graded photos, as pure functions of labels, predictions and probabilities.

Grades are integer codes in order, best first (0 = A, 1 = B, 2 = C): the distance between
two codes is how many grades apart they are. Every metric except the log loss is a
function of the confusion matrix, so the bootstrap resamples confusion matrices (one per
photo, or per fruit) instead of photos, which keeps thousands of replicates cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..basics.errors import SettingsError


def _codes(values: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
    codes = np.asarray(values)
    if codes.ndim != 1 or (codes.size and not np.issubdtype(codes.dtype, np.integer)):
        raise SettingsError(
            f"{what} must be a 1-D array of integer grade codes (0 = best grade); "
            f"got dtype {codes.dtype} and shape {codes.shape}."
        )
    return codes.astype(np.int64)


def confusion_matrix(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    n_grades: int | None = None,
    normalise: bool = False,
) -> np.ndarray:
    """``(n_grades, n_grades)`` counts: row = true grade, column = predicted grade.

    With ``normalise`` each row is divided by its total (a grade with no photos stays 0).

    Examples
    --------
    >>> confusion_matrix([0, 0, 2], [0, 1, 2], 3).tolist()
    [[1, 1, 0], [0, 0, 0], [0, 0, 1]]
    """
    true, pred = _codes(y_true, "y_true"), _codes(y_pred, "y_pred")
    if len(true) != len(pred):
        raise SettingsError(
            f"y_true has {len(true)} grades but y_pred has {len(pred)}: give one each per photo."
        )
    k = (
        n_grades
        if n_grades is not None
        else int(max(true.max(initial=-1), pred.max(initial=-1))) + 1
    )
    if len(true) and (min(true.min(), pred.min()) < 0 or max(true.max(), pred.max()) >= k):
        raise SettingsError(f"Grade codes must lie in 0..{k - 1} for {k} grades.")
    counts = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    return _row_normalise(counts) if normalise else counts


def _row_normalise(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


# -- metrics of confusion matrices; ``cm`` may carry leading batch axes (..., k, k) ---------


def _total(cm: np.ndarray) -> np.ndarray:
    return cm.sum(axis=(-2, -1))


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


def _distance(k: int) -> np.ndarray:
    codes = np.arange(k)
    return np.abs(codes[:, None] - codes[None, :])


def accuracy_of(cm: np.ndarray) -> np.ndarray:
    return _safe_divide(np.trace(cm, axis1=-2, axis2=-1), _total(cm))


def balanced_accuracy_of(cm: np.ndarray) -> np.ndarray:
    """Mean recall over the grades that have photos."""
    support = cm.sum(axis=-1)
    recall = _safe_divide(np.diagonal(cm, axis1=-2, axis2=-1), support)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(support > 0, recall, np.nan), axis=-1)


def mean_grade_error_of(cm: np.ndarray) -> np.ndarray:
    k = cm.shape[-1]
    return _safe_divide((cm * _distance(k)).sum(axis=(-2, -1)), _total(cm))


def two_grade_error_rate_of(cm: np.ndarray) -> np.ndarray:
    """Share of photos graded two or more grades off (A taken for C, or C for A)."""
    k = cm.shape[-1]
    return _safe_divide((cm * (_distance(k) >= 2)).sum(axis=(-2, -1)), _total(cm))


def quadratic_kappa_of(cm: np.ndarray) -> np.ndarray:
    """Cohen's kappa with quadratic weights ``(i - j)^2 / (k - 1)^2``.

    NaN when it is undefined: every photo has one true grade and is predicted that same
    grade, so chance agreement is already perfect.
    """
    k = cm.shape[-1]
    weights = _distance(k) ** 2 / max(1, (k - 1) ** 2)
    total = _total(cm)[..., None, None].astype(float)
    observed = _safe_divide(cm, total)
    expected = _safe_divide(cm.sum(axis=-1)[..., :, None] * cm.sum(axis=-2)[..., None, :], total**2)
    disagreement = (weights * expected).sum(axis=(-2, -1))
    return 1.0 - _safe_divide((weights * observed).sum(axis=(-2, -1)), disagreement)


def macro_f1_of(cm: np.ndarray) -> np.ndarray:
    precision, recall, f1 = _per_grade(cm)
    return np.nanmean(f1, axis=-1)


def _per_grade(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hits = np.diagonal(cm, axis1=-2, axis2=-1)
    precision = _safe_divide(hits, cm.sum(axis=-2))
    recall = _safe_divide(hits, cm.sum(axis=-1))
    f1 = _safe_divide(2 * hits, cm.sum(axis=-2) + cm.sum(axis=-1))
    return precision, recall, f1


# -- the same metrics from labels and predictions ------------------------------------------


def _from_labels(metric: Callable[[np.ndarray], np.ndarray]) -> Callable[..., float]:
    def wrapped(
        y_true: Sequence[int] | np.ndarray,
        y_pred: Sequence[int] | np.ndarray,
        n_grades: int | None = None,
    ) -> float:
        return float(metric(confusion_matrix(y_true, y_pred, n_grades)))

    wrapped.__name__ = metric.__name__.removesuffix("_of")
    wrapped.__doc__ = metric.__doc__
    return wrapped


accuracy = _from_labels(accuracy_of)
balanced_accuracy = _from_labels(balanced_accuracy_of)
mean_grade_error = _from_labels(mean_grade_error_of)
two_grade_error_rate = _from_labels(two_grade_error_rate_of)
quadratic_kappa = _from_labels(quadratic_kappa_of)
macro_f1 = _from_labels(macro_f1_of)


def per_grade_scores(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    grades: Sequence[str],
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each grade (None where undefined, e.g. the
    precision of a grade never predicted)."""
    cm = confusion_matrix(y_true, y_pred, len(grades))
    precision, recall, f1 = _per_grade(cm)
    support = cm.sum(axis=1)
    return {
        grade: {
            "precision": _or_none(precision[i]),
            "recall": _or_none(recall[i]),
            "f1": _or_none(f1[i]),
            "support": int(support[i]),
        }
        for i, grade in enumerate(grades)
    }


def _or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def log_loss(y_true: Sequence[int] | np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log probability given to each photo's true grade."""
    return float(_photo_log_losses(_codes(y_true, "y_true"), proba, eps).mean())


def _photo_log_losses(true: np.ndarray, proba: np.ndarray, eps: float = 1e-15) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or len(proba) != len(true) or (len(true) and true.max() >= proba.shape[1]):
        raise SettingsError(
            f"Probabilities must be (n_photos, n_grades) = ({len(true)}, >{true.max(initial=0)}); "
            f"got shape {proba.shape}."
        )
    return -np.log(np.clip(proba[np.arange(len(true)), true], eps, 1.0))


SCALAR_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": accuracy_of,
    "balanced_accuracy": balanced_accuracy_of,
    "macro_f1": macro_f1_of,
    "mean_grade_error": mean_grade_error_of,
    "quadratic_kappa": quadratic_kappa_of,
    "two_grade_error_rate": two_grade_error_rate_of,
}


# name -> (title, meaning, higher is better, format)
METRIC_INFO: dict[str, tuple[str, str, bool, str]] = {
    "accuracy": ("Accuracy", "Share of held-out photos graded right.", True, "{:.3f}"),
    "balanced_accuracy": (
        "Balanced acc.",
        "Mean of the per-grade recalls: a rare grade counts as much as a common one.",
        True,
        "{:.3f}",
    ),
    "macro_f1": ("Macro F1", "Mean F1 over the grades.", True, "{:.3f}"),
    "mean_grade_error": (
        "Mean grade error",
        "Mean number of grades between truth and prediction (0 = perfect, A for C = 2).",
        False,
        "{:.3f}",
    ),
    "quadratic_kappa": (
        "Grade agreement (QWK)",
        "Quadratic weighted kappa: agreement beyond chance, far-off grades weigh more (1 = "
        "perfect, 0 = chance).",
        True,
        "{:.3f}",
    ),
    "two_grade_error_rate": (
        "{best}↔{worst} errors",
        "Share of photos graded two grades off: {best} taken for {worst} or {worst} for {best}.",
        False,
        "{:.1%}",
    ),
    "log_loss": (
        "Log loss",
        "Mean -log of the probability given to the true grade (lower is better).",
        False,
        "{:.3f}",
    ),
}


def metric_words(name: str, grades: Sequence[str] | None = None) -> tuple[str, str]:
    """A metric's title and meaning in words, naming the best and worst grades as the run
    names them (``A`` and ``C`` when no grades are given)."""
    title, meaning, _, _ = METRIC_INFO[name]
    best, worst = (grades[0], grades[-1]) if grades else ("A", "C")
    return title.format(best=best, worst=worst), meaning.format(best=best, worst=worst)


def format_metric(fmt: str, value: float | None) -> str:
    """``fmt`` applied to ``value``, or a dash where the metric is undefined."""
    return "–" if value is None or value != value else fmt.format(value)
