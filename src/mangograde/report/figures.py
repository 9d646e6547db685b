"""Plots of search grids, parameter sweeps, t-SNE maps and training curves, as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..basics.atomic import atomic_path

GRADE_COLOURS = ("#2e7d32", "#f9a825", "#c62828", "#1565c0", "#6a1b9a")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def search_heatmap(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """One heatmap of mean accuracy (C down, gamma across) per number of PCA components."""
    plt = _pyplot()
    panels = sorted({r["n_components"] for r in rows})
    cs = sorted({r["C"] for r in rows})
    gammas = sorted({str(r["gamma"]) for r in rows}, key=_gamma_order)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1, 3.9), squeeze=False)
    for ax, n in zip(axes[0], panels, strict=True):
        grid = np.full((len(cs), len(gammas)), np.nan)
        for r in rows:
            if r["n_components"] == n:
                grid[cs.index(r["C"]), gammas.index(str(r["gamma"]))] = r["accuracy"]
        image = ax.imshow(grid, vmin=np.nanmin(grid) if np.isfinite(grid).any() else 0, vmax=1)
        image.set_cmap("viridis")
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(gammas)), gammas, rotation=45)
        ax.set_yticks(range(len(cs)), [f"{c:g}" for c in cs])
        ax.set_xlabel("gamma")
        ax.set_ylabel("C")
        kept = max(r.get("n_components_used", n) for r in rows if r["n_components"] == n)
        ax.set_title(f"PCA {n}" if kept == n else f"PCA {n} (data allow {kept})")
    fig.suptitle(title or "Grouped cross-validation accuracy")
    fig.tight_layout()
    return _save(fig, path)


def _gamma_order(value: str) -> tuple[int, float]:
    try:
        return (1, float(value))
    except ValueError:
        return (0, 0.0)


def sweep_plot(
    rows: Sequence[dict[str, Any]], param: str, path: str | Path, title: str = ""
) -> Path:
    """CV accuracy and the raw / honest OOB scores against the swept parameter."""
    plt = _pyplot()
    labels = [str(r["value"]) for r in rows]
    numeric = all(isinstance(r["value"], (int, float)) for r in rows)
    x = [r["value"] for r in rows] if numeric else list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, name, style in (
        ("cv_accuracy", "grouped CV accuracy", "o-"),
        ("oob_raw", "OOB, raw (siblings leak)", "s--"),
        ("oob_honest", "OOB, honest (by group)", "^-"),
    ):
        values = [r.get(key) for r in rows]
        if any(v is not None and np.isfinite(v) for v in values):
            ax.plot(x, [np.nan if v is None else v for v in values], style, label=name)
    if not numeric:
        ax.set_xticks(x, labels)
    ax.set_xlabel(param)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"Random forest: accuracy against {param}")
    fig.tight_layout()
    return _save(fig, path)


def tsne_plot(
    coords: np.ndarray, labels: np.ndarray, grades: Sequence[str], path: str | Path, title: str
) -> Path:
    """Scatter of 2-D or 3-D t-SNE coordinates, one colour per grade."""
    plt = _pyplot()
    three = coords.shape[1] == 3
    fig = plt.figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(projection="3d" if three else None)
    for index, grade in enumerate(grades):
        mine = labels == index
        colour = GRADE_COLOURS[index % len(GRADE_COLOURS)]
        ax.scatter(*coords[mine].T, s=12, color=colour, label=f"{grade} ({mine.sum()})")
    ax.legend(title="grade")
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: str | Path | BinaryIO) -> Any:
    """Write ``fig`` as PNG to a file path (whole or not at all) or an open binary stream."""
    try:
        if isinstance(path, str | Path):
            path = Path(path)
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=110, format="png")
        else:
            fig.savefig(path, dpi=110, format="png")
    finally:
        _pyplot().close(fig)
    return path


EXPLAINED = {
    "lime": "LIME: green regions support grade {grade}",
    "gradcam": "Grad-CAM: warm regions drove grade {grade}",
}  # one wording for a figure and the grading page's picture


def lime_shading(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (uint8) as floats 0-1, LIME's supporting regions shaded green (the
    study's figure 17) and the rest dimmed."""
    shown = image.astype(float) / 255
    green = np.array([0.1, 0.8, 0.1])
    return np.where(mask[..., None], 0.55 * shown + 0.45 * green, 0.85 * shown)


def _draw_explanation(photo_ax: Any, why_ax: Any, e: Any, photo_title: str) -> None:
    photo_ax.imshow(e.image)
    photo_ax.set_title(_wrapped(photo_title), fontsize=9)
    caption = EXPLAINED[e.method].format(grade=e.grade)
    if e.method == "lime":
        from skimage.segmentation import mark_boundaries

        shown = lime_shading(e.image, e.mask)
        why_ax.imshow(mark_boundaries(shown, e.segments, color=(1, 1, 1), mode="thin"))
    else:
        why_ax.imshow(e.image.astype(float) / 255)
        why_ax.imshow(e.heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        why_ax.contour(e.mask, levels=[0.5], colors="white", linewidths=1.2)
        caption += "\n(outline: top half of the map)"
    why_ax.set_title(_wrapped(caption), fontsize=9)
    for ax in (photo_ax, why_ax):
        ax.set_axis_off()


def explanation_figure(explanation: Any, path: str | Path | BinaryIO, title: str = "") -> Any:
    """The photo as the model saw it, beside its explanation: LIME's supporting regions
    shaded green (the study's figure 17), or the Grad-CAM map with its support outlined."""
    plt = _pyplot()
    e = explanation
    fig, (photo_ax, why_ax) = plt.subplots(1, 2, figsize=(7.2, 3.9))
    _draw_explanation(photo_ax, why_ax, e, "Photo (model input)")
    odds = "  ".join(f"{g} {p:.2f}" for g, p in e.proba.items())
    fig.suptitle(_wrapped(title or f"Predicted {e.predicted}   ({odds})", 80), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def fruit_explanation_figure(
    explanations: Sequence[Any], names: Sequence[str], title: str, path: str | Path | BinaryIO
) -> Any:
    """Every view of one fruit beside its explanation, one row a photo, under the fruit's
    grade."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(explanations), 2, figsize=(7.2, 3.6 * len(explanations)),
                             squeeze=False)  # fmt: skip
    for (photo_ax, why_ax), e, name in zip(axes, explanations, names, strict=True):
        odds = "  ".join(f"{g} {p:.2f}" for g, p in e.proba.items())
        _draw_explanation(photo_ax, why_ax, e, f"{name}: {e.predicted} ({odds})")
    fig.suptitle(_wrapped(title, 80), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _wrapped(text: str, width: int = 42) -> str:
    """Long grade names wrap instead of running off the panel."""
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def training_curves(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train (dashed) and validation (solid), one colour per
    model (fold, or fold and blend member): the study's figures 2-7."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    models = sorted({(r["fold"], r["member"]) for r in rows})
    colours = plt.get_cmap("tab10")
    for i, key in enumerate(models):
        mine = [r for r in rows if (r["fold"], r["member"]) == key]
        epochs = [r["epoch"] for r in mine]
        fold, member = key
        if isinstance(member, str) and member:
            label = member  # an ablation's variant
        else:
            label = f"fold {fold}" + (f" model {member}" if member != "" else "")
        for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
            colour = colours(i % 10)
            ax.plot(epochs, [r[f"train_{metric}"] for r in mine], "--", color=colour, alpha=0.7)
            val = [r.get(f"val_{metric}") for r in mine]
            if any(v not in (None, "") for v in val):
                ax.plot(epochs, val, "-", color=colour, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss (dashed: train, solid: validation)")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
    if len(models) <= 10:
        acc_ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def metric_intervals(
    labels: Sequence[str],
    metrics: Sequence[dict[str, dict[str, float]]],
    names: Sequence[str],
    path: str | Path | BinaryIO,
) -> Any:
    """One panel per metric: each run's value as a dot with its interval as a bar."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(names), figsize=(3.6 * len(names), 0.5 * len(labels) + 1.3), squeeze=False
    )
    colours = plt.get_cmap("tab10")
    for ax, name in zip(axes[0], names, strict=True):
        for i, run in enumerate(metrics):
            m = run[name]
            if None in (m["value"], m["low"], m["high"]):
                continue  # undefined on these photos (e.g. kappa of a single grade)
            ax.errorbar(
                m["value"],
                i,
                # a percentile interval need not contain the estimate; bars cannot be negative
                xerr=[[max(0, m["value"] - m["low"])], [max(0, m["high"] - m["value"])]],
                fmt="o",
                color=colours(i % 10),
                capsize=4,
            )
        ax.set_yticks(range(len(labels)), labels if ax is axes[0][0] else [""] * len(labels))
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def reliability_diagram(
    record: dict[str, Any], path: str | Path | BinaryIO, title: str = "", unit: str = "photos"
) -> Any:
    """Accuracy against confidence per bin (calibrated: on the diagonal), and accuracy
    against coverage when the least confident photos are checked by hand."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    bins = record["calibration"]["bins"]
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    left.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["accuracy"] for b in bins],
             width=[b["high"] - b["low"] for b in bins], alpha=0.7, edgecolor="black")  # fmt: skip
    ece = record["calibration"]["ece"]
    left.set(xlabel="top probability", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
             title=f"Reliability (calibration error {ece:.3f})")  # fmt: skip
    curve = record["coverage"]["curve"]
    right.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], marker="o")
    right.axhline(record["coverage"]["target"], color="grey", linestyle="--", linewidth=1)
    right.set(xlabel=f"share of {unit} graded (most confident first)", ylabel="accuracy",
              xlim=(0, 1.02), title="Check the rest by hand")  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def familiarity_histogram(
    reference: np.ndarray, scores: np.ndarray, threshold: float, path: str | Path, title: str = ""
) -> Path:
    """Scores of the run's held-out photos beside those of the photos checked, with the
    threshold above which a photo is unfamiliar."""
    plt = _pyplot()
    finite = np.concatenate([reference, scores])
    finite = finite[np.isfinite(finite)]
    top = float(np.quantile(finite, 0.995)) if len(finite) else threshold * 2
    bins = np.linspace(0, max(top, threshold) * 1.05, 40)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(np.clip(reference, 0, bins[-1]), bins, alpha=0.6, density=True,
            label=f"the run's held-out photos ({len(reference)})")  # fmt: skip
    ax.hist(np.clip(scores, 0, bins[-1]), bins, alpha=0.6, density=True,
            label=f"these photos ({len(scores)})")  # fmt: skip
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set(xlabel="distance from the training photos (familiarity score)", ylabel="density",
           title=title or "How familiar these photos look")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
