"""argmax against min-cost decisions on runs' out-of-fold probabilities (no retraining).

    python benchmarks/bench_decisions.py RUN [RUN ...]

For each run: accuracy, mean grade error, A<->C (two-grade) errors and QWK of the grades
its predictions.csv probabilities give under each rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def main() -> None:
    from mangograde.evaluation import (
        accuracy,
        mean_grade_error,
        quadratic_kappa,
        two_grade_error_rate,
    )
    from mangograde.evaluation.decisions import DECISIONS, decide
    from mangograde.runs import open_run

    print(f"machine: {machine()}")
    print("| run | photos | rule | accuracy | mean grade error | A<->C errors | QWK |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for path in sys.argv[1:]:
        run = open_run(path)
        held = run.held_out
        for rule in DECISIONS:
            codes = decide(held.proba, rule)
            k = len(held.grades)
            twos = round(two_grade_error_rate(held.true, codes, k) * len(codes))
            print(f"| {run.label} | {len(codes)} | {rule} | {accuracy(held.true, codes, k):.3f} | "
                  f"{mean_grade_error(held.true, codes, k):.3f} | {twos} | "
                  f"{quadratic_kappa(held.true, codes, k):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
