"""Issue 24: does a run notice photos unlike its training photos, photo by photo and batch
by batch, and what does it cost?

    python benchmarks/bench_familiar.py NAME=RUN [NAME=RUN ...] [--photos N]

RUN: a run trained on mango-grading with --groups (5 folds by fruit). Each fold's
familiarity model is fit again here from the run's own fold models and photos, exactly as
``train`` fits it (``runs.familiar.fit_familiarity`` on the family's features), so runs
trained before familiarity existed are measured too. For each run:

- per photo: out-of-fold mango-grading photos (each scored by its own, blind, fold model)
  against aicup-sample's 94 photos (scored as the grader scores them: the mean over the
  fold models): AUROC, the share flagged on either side; the same for a 5-nearest-
  neighbour cosine distance in the same features, and the axes alone without the residual
  (the first release), to choose the method by measurement;
- windows of 30 photos, 200 each: each fold's held-out photos are split by fruit in two
  halves, one the reference, the other the source of familiar windows (scored by the fold
  model blind to both); aicup-sample windows against the same reference; and the whole
  grader's test (every fold model, Bonferroni) on aicup windows;
- shifts of the out-of-fold photos (made on the decoded photos): the share flagged, the
  accuracy, and the accuracy on the photos not flagged;
- cost: grading with the familiarity scores against grading alone, the same photos, in
  the same process (a ratio, and the milliseconds a photo added on this machine).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402

WINDOW = 30
N_WINDOWS = 200


def held_out(run: Path) -> list[dict[str, str]]:
    with (run / "predictions.csv").open(encoding="utf-8") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: r["image"])


def shifts() -> dict[str, object]:
    from PIL import Image, ImageFilter

    def pil(fn):
        def apply(a: np.ndarray) -> np.ndarray:
            return np.asarray(fn(Image.fromarray(a)).convert("RGB"))

        return apply

    def jpeg(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=20)
        return Image.open(io.BytesIO(buffer.getvalue()))

    def scaled(r: float, g: float, b: float):
        return lambda a: np.clip(a * np.array([r, g, b]), 0, 255).astype(np.uint8)

    def half(a: np.ndarray) -> np.ndarray:
        h, w = a.shape[:2]
        crop = a[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2]
        return np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))

    return {
        "none": lambda a: a,
        "white balance warm (R +20%, B -20%)": scaled(1.2, 1.0, 0.8),
        "white balance cool (R -20%, B +20%)": scaled(0.8, 1.0, 1.2),
        "brightness +30%": scaled(1.3, 1.3, 1.3),
        "brightness -30%": scaled(0.7, 0.7, 0.7),
        "blur (Gaussian, radius 2)": pil(lambda i: i.filter(ImageFilter.GaussianBlur(2))),
        "JPEG quality 20": pil(jpeg),
        "90 degree turn": lambda a: np.ascontiguousarray(np.rot90(a)),
        "fruit cropped to half (centre, enlarged)": half,
    }


def knn_auroc(train: list[np.ndarray], held: list[np.ndarray], other: np.ndarray) -> float:
    """The 5-nearest-neighbour cosine distance, same folds: held-out photos by their own
    fold's training features, the other photos by each fold's, then the mean."""
    from mangograde.evaluation.familiarity import auroc

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def distance(reference, x):
        similar = np.sort(unit(x) @ unit(reference).T, axis=1)[:, -5:]
        return 1 - similar.mean(axis=1)

    own = np.concatenate([distance(t, h) for t, h in zip(train, held, strict=True)])
    theirs = np.mean([distance(t, o) for t, o in zip(train, other, strict=True)], axis=0)
    return auroc(own, theirs)


def axes_only_auroc(fitted, held: list[np.ndarray], other: list[np.ndarray]) -> float:
    """The same models scored on their principal axes alone (no residual term)."""
    from dataclasses import replace

    from mangograde.evaluation.familiarity import auroc

    plain = [replace(f, residual_precision=0.0) for f in fitted]
    own = np.concatenate([f.score(h) for f, h in zip(plain, held, strict=True)])
    theirs = np.mean([f.score(o) for f, o in zip(plain, other, strict=True)], axis=0)
    return auroc(own, theirs)


def halves_by_fruit(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fruits = np.unique(groups)
    chosen = set(rng.permutation(fruits)[: len(fruits) // 2])
    return np.array([g in chosen for g in groups])


def measure(name: str, run_dir: Path, n_cost: int) -> dict[str, object]:
    from mangograde.data import load_dataset
    from mangograde.evaluation.familiarity import auroc, drift_pvalue, one_sided_ks
    from mangograde.images import ImageCache, load_images
    from mangograde.runs import open_predictor, open_run
    from mangograde.runs.familiar import fit_familiarity

    run = open_run(run_dir)
    predictor = open_predictor(run)
    rows = held_out(run_dir)
    root = data_dir("mango-grading")
    cache = ImageCache()
    images = load_images([root / r["image"] for r in rows], predictor.geometry, cache).arrays
    folds = np.array([int(r["fold"]) for r in rows])
    groups = np.array([r["group"] for r in rows])
    grades = list(predictor.grades)
    truth = np.array([grades.index(r["true"]) for r in rows])
    models = predictor.models
    started = time.perf_counter()
    features = [(m.embed(images[folds != k]), m.embed(images[folds == k]))
                for k, m in enumerate(models)]  # fmt: skip
    embed_s = time.perf_counter() - started
    fitted, record = fit_familiarity(features, 0.99)
    threshold = record["threshold"]
    oof = np.zeros(len(rows))
    for k, f in enumerate(fitted):
        oof[folds == k] = f.reference
    aicup = data_dir("aicup-sample")
    sample = load_dataset(aicup / "sample_image", aicup / "Sample_Label.csv")
    other = load_images(sample.paths, predictor.geometry, cache).arrays
    other_truth = np.asarray(sample.labels)  # A, B, C: the same order as the run's grades
    other_features = [m.embed(other) for m in models]
    per_model = np.stack([f.score(x) for f, x in zip(fitted, other_features, strict=True)])
    other_scores = per_model.mean(axis=0)
    other_pred = predictor.grade(other)[1]
    out: dict[str, object] = {
        "run": str(run_dir),
        "family": run.model_kind,
        "n_features": record["n_features"],
        "threshold": threshold,
        "oof_flagged": float(np.mean(oof > threshold)),
        "aicup_flagged": float(np.mean(other_scores > threshold)),
        "auroc": auroc(oof, other_scores),
        "auroc_axes_only (the first release: no residual)": axes_only_auroc(
            fitted, [h for _, h in features], other_features
        ),
        "knn_auroc": knn_auroc(
            [t for t, _ in features], [h for _, h in features], np.stack(other_features)
        ),  # fmt: skip
        "aicup_accuracy": float(np.mean(other_pred == other_truth)),
        "aicup_accuracy_unflagged": (
            float(np.mean((other_pred == other_truth)[other_scores <= threshold]))
            if (other_scores <= threshold).any()
            else None
        ),  # fmt: skip
    }
    # -- windows: reference and familiar windows from different fruits of one fold --------
    rng = np.random.default_rng(0)
    familiar_alarms, aicup_alarms = [], []
    for k, f in enumerate(fitted):
        mine = np.flatnonzero(folds == k)
        half = halves_by_fruit(groups[mine], rng)
        reference, source = f.reference[half], f.reference[~half]
        other_k = per_model[k]
        for _ in range(N_WINDOWS // len(fitted)):
            window = rng.choice(source, size=min(WINDOW, len(source)), replace=False)
            familiar_alarms.append(one_sided_ks(window, reference) < 0.01)
            drawn = rng.choice(other_k, size=WINDOW, replace=False)
            aicup_alarms.append(one_sided_ks(drawn, reference) < 0.01)
    references = [f.reference for f in fitted]
    grader_alarms = []
    for _ in range(N_WINDOWS):
        pick = rng.choice(len(other), size=WINDOW, replace=False)
        grader_alarms.append(drift_pvalue(list(per_model[:, pick]), references) < 0.01)
    out["windows"] = {
        "size": WINDOW,
        "familiar_alarm_rate (one fold model, other fruits' reference)": float(
            np.mean(familiar_alarms)),
        "aicup_alarm_rate (one fold model)": float(np.mean(aicup_alarms)),
        "aicup_alarm_rate (the grader: 5 models, Bonferroni)": float(np.mean(grader_alarms)),
    }  # fmt: skip
    # -- shifts ----------------------------------------------------------------------------
    table = {}
    for label, shift in shifts().items():
        shifted = np.stack([shift(a) for a in images])
        scores = np.zeros(len(rows))
        predicted = np.zeros(len(rows), dtype=int)
        for k, (f, m) in enumerate(zip(fitted, models, strict=True)):
            mine = folds == k
            proba, x = m.proba_and_embed(shifted[mine]) if hasattr(m, "proba_and_embed") else (
                m.predict_proba(shifted[mine]), m.embed(shifted[mine]))  # fmt: skip
            scores[mine] = f.score(x)
            predicted[mine] = np.asarray(m.classes_)[proba.argmax(axis=1)]
        right = predicted == truth
        keep = scores <= threshold
        table[label] = {
            "flagged": float(np.mean(~keep)),
            "accuracy": float(right.mean()),
            "accuracy_unflagged": float(right[keep].mean()) if keep.any() else None,
        }
    out["shifts"] = table
    # -- cost: the grader with and without its familiarity scores, same photos ----------------
    from mangograde.evaluation.familiarity import Familiarity

    predictor._set_familiarity(Familiarity(tuple(fitted)))  # with the threshold fit above
    photos = images[:n_cost]
    timings = {"grade": [], "grade_and_score": []}
    for _ in range(3):
        for key in timings:
            started = time.perf_counter()
            getattr(predictor, key)(photos)
            timings[key].append(time.perf_counter() - started)
    plain, both = min(timings["grade"]), min(timings["grade_and_score"])
    out["cost"] = {
        "photos": len(photos),
        "ratio": both / plain,
        "ms_added_per_photo": 1000 * (both - plain) / len(photos),
        "ms_per_photo_grading": 1000 * plain / len(photos),
        "embed_all_folds_s": embed_s,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN")
    parser.add_argument("--photos", type=int, default=120, help="photos timed for the cost")
    parser.add_argument("--out", type=Path, default=Path("familiar-results.json"))
    args = parser.parse_args()
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    for spec in args.runs:
        name, _, path = spec.partition("=")
        results[name] = measure(name, Path(path), args.photos)
        print(json.dumps({name: results[name]}, indent=2), flush=True)
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
