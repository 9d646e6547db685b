"""Issue 23: grade the fruit, not the photo, scored on runs' out-of-fold probabilities.

    python benchmarks/bench_fruits.py NAME=RUN [NAME=RUN ...] [--blend NAME=RUN+RUN]

RUN: a run trained on mango-grading with --groups (5 folds by fruit). For each run, the
fruit rules side by side on the same out-of-fold photos: the run's own fruit level
(metrics.json, fruits.csv), the mean and the log-mean of each fruit's photo probabilities
(each also after a temperature fit on the other folds' fruits), a vote, the worst photo,
and a learned rule (a logistic regression on each grade's max, mean and min over the
fruit's photos and the log of the photo count, fit on the other folds' fruits only). Then
accuracy by photo count, the fruits that stay wrong, and what the fruit rule costs against
grading one photo with the run (same process). ``--blend`` averages two runs' out-of-fold
probabilities with fixed equal weights (the runs must share their folds).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def read(run: Path) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    with (run / "predictions.csv").open(encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["image"])
    grades = [c[2:] for c in rows[0] if c.startswith("p_")]
    proba = np.array([[float(r[f"p_{g}"]) for g in grades] for r in rows])
    return rows, grades, proba


def blended(spec: str) -> tuple[list[dict[str, str]], list[str], np.ndarray]:
    parts = [read(Path(p)) for p in spec.split("+")]
    rows, grades, _ = parts[0]
    for other, other_grades, _ in parts[1:]:
        same = [(r["image"], r["fold"]) for r in rows] == [(o["image"], o["fold"]) for o in other]
        if not same or other_grades != grades:
            sys.exit(f"{spec}: the runs do not share photos, folds and grades.")
    return rows, grades, np.mean([p for _, _, p in parts], axis=0)


def learned_rule(proba, fruits, true, folds):
    """Out-of-fold fruit probabilities of a logistic regression on per-fruit summaries."""
    from sklearn.linear_model import LogisticRegression

    k = proba.shape[1]
    n = len(fruits)
    summary = np.zeros((n, 3 * k + 1))
    for f in range(n):
        mine = proba[fruits.of == f]
        summary[f] = [*mine.max(0), *mine.mean(0), *mine.min(0), np.log(len(mine))]
    out = np.zeros((n, k))
    for fold in np.unique(folds):
        test = folds == fold
        model = LogisticRegression(C=1.0, max_iter=2000).fit(summary[~test], true[~test])
        out[np.ix_(test, model.classes_)] = model.predict_proba(summary[test])
    return out


def score(name, rule, true, proba, k):
    from mangograde.evaluation import two_grade_error_rate
    from mangograde.evaluation.confidence import calibration, coverage

    codes = proba.argmax(1)
    reach = coverage(true, codes, proba)["reaches_target"]
    at90 = coverage(true, codes, proba)["accuracy_at_90"]
    return (f"| {name} | {rule} | {np.mean(codes == true):.3f} | "
            f"{round(two_grade_error_rate(true, codes, k) * len(true))} | "
            f"{calibration(true, proba)['ece']:.3f} | {at90:.3f} | "
            f"{0 if reach is None else reach['coverage']:.0%} |")  # fmt: skip


def rule_cost(run: Path, fruits, proba) -> str:
    """Microseconds per fruit of the fruit rule, against grading one photo with the run."""
    from mangograde.evaluation.decisions import GradingRule
    from mangograde.evaluation.fruits import Fruits
    from mangograde.images import load_images
    from mangograde.runs import open_predictor

    rule = GradingRule(fruit="mean", fruit_temperature=0.7)
    start, repeats = time.perf_counter(), 200
    for _ in range(repeats):
        rule.grade_fruits(proba, fruits)
    per_fruit = (time.perf_counter() - start) / repeats / len(fruits)
    ten = Fruits.from_ids(["one"] * 10)
    start = time.perf_counter()
    for _ in range(repeats):
        rule.grade_fruits(proba[:10], ten)
    per_call = (time.perf_counter() - start) / repeats
    predictor = open_predictor(run)
    photos = sorted(data_dir("mango-grading").glob("*/*.jpg"))[:32]
    images = load_images(photos, predictor.geometry, progress=False).arrays
    predictor.grade(images[:4])
    start = time.perf_counter()
    predictor.grade(images)
    per_photo = (time.perf_counter() - start) / len(images)
    return (f"fruit rule: {1e6 * per_fruit:.1f} us per fruit ({len(fruits)} fruits at once); "
            f"{1e6 * per_call:.1f} us for one fruit of 10 photos alone; grading one photo with "
            f"the run (decoded, batch of 32): {1e3 * per_photo:.2f} ms, so one fruit of 10 "
            f"photos costs {per_call / (10 * per_photo):.1e} of grading its photos")  # fmt: skip


def main() -> None:
    from mangograde.evaluation.fruits import Fruits, combine, fruit_folds, fruit_labels
    from mangograde.evaluation.temperature import cross_fit

    args = sys.argv[1:]
    specs = []
    while args:
        item = args.pop(0)
        if item == "--blend":
            name, _, spec = args.pop(0).partition("=")
            specs.append((name, spec, True))
        else:
            name, _, spec = item.partition("=")
            specs.append((name, spec, False))
    print(f"machine: {machine()}\n")
    print("| run | rule | fruit accuracy | A<->C | ECE | accuracy on surest 90% | "
          "graded at 99% accuracy |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    notes = []
    for name, spec, blend in specs:
        rows, grades, proba = blended(spec) if blend else read(Path(spec))
        k = len(grades)
        true = np.array([grades.index(r["true"]) for r in rows])
        fruits = Fruits.from_ids([r["group"] for r in rows], [r["image"] for r in rows])
        folds = fruit_folds(np.array([int(r["fold"]) for r in rows]), fruits)
        fruit_true, mixed = fruit_labels(true, fruits)
        print(score(name, "photo (no fruit rule)", true, proba, k))
        if not blend:
            metrics = json.loads((Path(spec) / "metrics.json").read_text())["fruit"]
            print(f"| {name} | the run's own (`{metrics['rule']}`, metrics.json) | "
                  f"{metrics['accuracy']['value']:.3f} | {metrics['extreme_errors']} | "
                  f"{metrics['ece']:.3f} | {metrics['accuracy_at_90']:.3f} | "
                  f"{metrics['coverage_at_99']:.0%} |")  # fmt: skip
        for rule in ("mean", "log-mean"):
            combined = combine(proba, fruits, rule)
            print(score(name, rule, fruit_true, combined, k))
            scaled = cross_fit(combined, fruit_true, folds)[0]
            print(score(name, f"{rule}, temperature", fruit_true, scaled, k))
        codes = proba.argmax(1)
        votes = np.zeros((len(fruits), k))
        np.add.at(votes, (fruits.of, codes), 1)
        print(score(name, "vote", fruit_true, votes / votes.sum(1, keepdims=True), k))
        worst = np.zeros(len(fruits), dtype=int)
        np.maximum.at(worst, fruits.of, codes)
        print(score(name, "worst photo", fruit_true, np.eye(k)[worst], k))
        learned = learned_rule(proba, fruits, fruit_true, folds)
        print(score(name, "learned (logistic regression)", fruit_true, learned, k))
        mean = combine(proba, fruits, "mean")
        counts = fruits.counts
        by_count = ", ".join(
            f"{label}: {np.mean(mean.argmax(1)[sel] == fruit_true[sel]):.3f} ({sel.sum()})"
            for label, sel in (
                ("1 photo", counts == 1),
                ("2", counts == 2),
                ("3", counts == 3),
                ("4+", counts >= 4),
            )  # fmt: skip
            if sel.any()
        )
        notes.append(f"{name}: {len(fruits)} fruits ({mixed} with mixed labels); mean rule by "
                     f"photo count: {by_count}")  # fmt: skip
        wrong = np.flatnonzero(mean.argmax(1) != fruit_true)
        for f in wrong:
            shares = " ".join(f"{g} {p:.2f}" for g, p in zip(grades, mean[f], strict=True))
            graded = grades[mean[f].argmax()]
            notes.append(f"  wrong: {fruits.names[f]} ({counts[f]} photos) true "
                         f"{grades[fruit_true[f]]}, graded {graded} ({shares})")  # fmt: skip
        if not blend:
            notes.append("  " + rule_cost(Path(spec), fruits, proba))
    print()
    print("\n".join(notes))


if __name__ == "__main__":
    main()
