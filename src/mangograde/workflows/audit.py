"""``mangograde data audit``: photos whose given grade may be wrong.

Every run's out-of-fold probabilities (each photo graded by a model that never saw its
fruit) are averaged, and cleanlab's ``find_label_issues`` ranks the photos whose given
grade the models find least likely. Nothing is relabelled: the output is a list to look at.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..basics.atomic import atomic_open, write_text
from ..basics.errors import SettingsError
from ..basics.outputs import claim_folder
from ..runs.folder import open_run


@dataclass
class Suspect:
    image: str
    given: str
    suggested: str
    p_given: float
    p_suggested: float
    misgraded_by: int  # how many of the runs grade it other than given


@dataclass
class Audit:
    suspects: list[Suspect]  # the most suspect first
    n_photos: int  # photos audited
    accuracy: float  # how often the runs' pooled grade is the given one


@dataclass
class _Pooled:
    images: list[str]
    grades: tuple[str, ...]
    true: np.ndarray
    proba: np.ndarray  # the runs' mean out-of-fold probabilities
    predicted: list[np.ndarray]  # each run's grades
    root: Path | None


def _out_of_fold(run_dirs: list[Path]) -> _Pooled:
    runs = [open_run(r) for r in run_dirs]
    held = []
    for run in runs:
        found = run.held_out
        if found is None or run.metrics.get("only_fold") is not None:
            raise SettingsError(
                f"{run.path} does not grade every photo out of fold: audit needs runs trained "
                "with --cv K on all folds."
            )
        held.append(found)
    first = held[0]
    order = {image: i for i, image in enumerate(first.image_ids)}
    for run, other in zip(runs[1:], held[1:], strict=True):
        if set(other.image_ids) != set(order) or other.grades != first.grades:
            raise SettingsError(
                f"{run.path} was trained on other photos or grades than {runs[0].path}: audit "
                "runs of the same data."
            )
    n, k = len(first.image_ids), len(first.grades)
    proba, predicted = np.zeros((n, k)), []
    for other in held:
        index = np.array([order[i] for i in other.image_ids])
        proba[index] += other.proba / len(held)
        guess = np.zeros(n, dtype=int)
        guess[index] = other.predicted
        predicted.append(guess)
    return _Pooled(list(first.image_ids), first.grades, first.true, proba, predicted,
                   runs[0].data_root)  # fmt: skip


def audit(run_dirs: list[Path], out: Path, top: int = 60) -> Audit:
    """Rank suspected label errors; write ``label_issues.csv`` and ``label_issues.html``."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise SettingsError("data audit needs cleanlab: pip install 'mangograde[audit]'.") from None
    out = claim_folder(Path(out))
    pooled = _out_of_fold([Path(r) for r in run_dirs])
    images, grades, true, proba = pooled.images, pooled.grades, pooled.true, pooled.proba
    predicted = pooled.predicted
    ranked = find_label_issues(true, proba, return_indices_ranked_by="self_confidence")
    suspects = [
        Suspect(
            image=images[i],
            given=grades[true[i]],
            suggested=grades[int(proba[i].argmax())],
            p_given=float(proba[i, true[i]]),
            p_suggested=float(proba[i].max()),
            misgraded_by=int(sum(p[i] != true[i] for p in predicted)),
        )
        for i in ranked
    ]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(out / "label_issues.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "given", "suggested", "p_given", "p_suggested",
                         f"misgraded_by_of_{len(predicted)}"])  # fmt: skip
        for s in suspects:
            writer.writerow([s.image, s.given, s.suggested, f"{s.p_given:.4f}",
                             f"{s.p_suggested:.4f}", s.misgraded_by])  # fmt: skip
    sheet = _contact_sheet(suspects[:top], pooled.root, len(predicted))
    write_text(out / "label_issues.html", sheet)
    return Audit(suspects, len(images), float(np.mean(proba.argmax(axis=1) == true)))


def _thumbnail(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (240, 240))
            picture = image.convert("RGB")
            picture.thumbnail((240, 240))
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=80)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _contact_sheet(suspects: list[Suspect], root: Path | None, n_runs: int) -> str:
    cards: list[str] = []
    for s in suspects:
        source = _thumbnail(root / s.image) if root else ""
        picture = f'<img src="{source}" alt="{html.escape(s.image)}">' if source else ""
        cards.append(
            f"<figure>{picture}<figcaption><b>{html.escape(s.image)}</b><br>given "
            f"{html.escape(s.given)} (p {s.p_given:.2f}), suggested {html.escape(s.suggested)} "
            f"(p {s.p_suggested:.2f}); misgraded by {s.misgraded_by} of {n_runs} runs"
            "</figcaption></figure>"
        )
    style = ("body{font-family:system-ui,sans-serif;margin:1rem}main{display:grid;gap:.75rem;"
             "grid-template-columns:repeat(auto-fill,minmax(15rem,1fr))}figure{margin:0;"
             "border:1px solid #ccc;border-radius:.5rem;padding:.5rem}img{width:100%}")  # fmt: skip
    head = f"<h1>Suspected label errors ({len(suspects)} shown)</h1>"
    note = ("<p>Ranked by cleanlab from out-of-fold probabilities. A photo here is worth a "
            "second look; the data is not changed.</p>")  # fmt: skip
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>Label audit</title>"
            f"<style>{style}</style>{head}{note}<main>{''.join(cards)}</main></html>")  # fmt: skip
