"""Issue 13's targets, scored on runs' out-of-fold probabilities (no retraining).

    python benchmarks/bench_oof.py NAME=RUN[+RUN...] [NAME=...]

A run is a run folder or its predictions.csv; ``+`` merges ``--only-fold`` runs of one
split (e.g. the folds of a stack trained one per process on a GPU machine). For each:
accuracy, QWK, A<->C errors, ECE, the coverage at which the most confident photos are
99% right and the accuracy on the surest 90% -- as the run's probabilities are, then
after temperature scaling fit fold by fold on the other folds' photos (what
``calibration=temperature`` does), under argmax and min-cost decisions.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def read(spec: str) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Photo names, true grade codes, fold numbers and probabilities of merged runs."""
    rows: dict[str, dict[str, str]] = {}
    for part in spec.split("+"):
        path = Path(part)
        path = path / "predictions.csv" if path.is_dir() else path
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["image"] in rows:
                    sys.exit(f"{path}: photo {row['image']} is in two of the merged runs.")
                rows[row["image"]] = row
    names = sorted(rows)
    columns = [c for c in rows[names[0]] if c.startswith("p_")]
    grades = [c[2:] for c in columns]
    true = np.array([grades.index(rows[n]["true"]) for n in names])
    folds = np.array([int(rows[n]["fold"]) for n in names])
    proba = np.array([[float(rows[n][c]) for c in columns] for n in names])
    return names, true, folds, proba


def main() -> None:
    from mangograde.evaluation import quadratic_kappa, two_grade_error_rate
    from mangograde.evaluation.confidence import calibration, coverage
    from mangograde.evaluation.decisions import DECISIONS, decide
    from mangograde.evaluation.temperature import cross_fit

    print(f"machine: {machine()}")
    print("| run | photos | probabilities | rule | accuracy | QWK | A<->C | ECE | "
          "coverage at 99% | accuracy on surest 90% |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for argument in sys.argv[1:]:
        name, _, spec = argument.partition("=")
        _, true, folds, proba = read(spec)
        k = proba.shape[1]
        scaled = cross_fit(proba, true, folds)[0]
        for label, probabilities in (("as trained", proba), ("temperature", scaled)):
            ece = calibration(true, probabilities)["ece"]
            for rule in DECISIONS:
                codes = decide(probabilities, rule)
                reach = coverage(true, codes, probabilities)
                at99 = reach["reaches_target"]
                twos = round(two_grade_error_rate(true, codes, k) * len(codes))
                print(f"| {name} | {len(true)} | {label} | {rule} | "
                      f"{np.mean(codes == true):.3f} | {quadratic_kappa(true, codes, k):.3f} | "
                      f"{twos} | {ece:.3f} | {0 if at99 is None else at99['coverage']:.0%} | "
                      f"{reach['accuracy_at_90']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
