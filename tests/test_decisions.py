"""decision=argmax|min-cost: the grade with the least expected cost, grades apart."""

from __future__ import annotations

import numpy as np

from mangograde.evaluation.decisions import cost_matrix, decide

from .service_helpers import train_tiny
from .test_cli import assert_clean_failure, run
from .test_cli_models import read_csv


def test_min_cost_takes_the_median_grade_where_argmax_takes_the_mode():
    proba = np.array([[0.45, 0.10, 0.45], [0.6, 0.3, 0.1], [0.4, 0.0, 0.6], [0.2, 0.2, 0.6]])
    assert decide(proba, "argmax").tolist() == [0, 0, 2, 2]
    assert decide(proba, "min-cost").tolist() == [1, 0, 2, 2]
    assert cost_matrix(3).tolist() == [[0, 1, 2], [1, 0, 1], [2, 1, 0]]


def test_a_run_with_min_cost_grades_by_it_in_training_and_in_predict(tmp_path):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path / "r", "--model", "svm", "--cv", "2",
                     "--set", "decision=min-cost")  # fmt: skip
    rows = read_csv(out / "predictions.csv")
    grades = ["A", "B", "C"]
    proba = np.array([[float(r[f"p_{g}"]) for g in grades] for r in rows])
    assert [r["predicted"] for r in rows] == [grades[c] for c in decide(proba, "min-cost")]
    done = run("predict", out, root / "dev", "--out", tmp_path / "p.csv")
    assert done.exit_code == 0, done.output
    graded = read_csv(tmp_path / "p.csv")
    proba = np.array([[float(r[f"p_{g}"]) for g in grades] for r in graded])
    assert [r["label"] for r in graded] == [grades[c] for c in decide(proba, "min-cost")]
    refused = run("train", root / "train", "--labels", root / "train.csv", "--model", "svm",
                  "--cv", "2", "--set", "decision=cheapest", "--out", tmp_path / "x")  # fmt: skip
    assert_clean_failure(refused, "Unknown decision 'cheapest'")
