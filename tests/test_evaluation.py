"""Metric functions against hand-computed cases, and the bootstrap's intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.evaluation import (
    accuracy,
    balanced_accuracy,
    bootstrap_intervals,
    confusion_matrix,
    evaluate,
    log_loss,
    macro_f1,
    mean_grade_error,
    per_grade_scores,
    quadratic_kappa,
    two_grade_error_rate,
)

# Eight photos, grades 0 = A, 1 = B, 2 = C: one A taken for C, one B for A, one C for A.
TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
PRED = [0, 0, 2, 1, 0, 2, 2, 0]


def test_confusion_counts_and_row_shares():
    assert confusion_matrix(TRUE, PRED, 3).tolist() == [[2, 0, 1], [1, 1, 0], [1, 0, 2]]
    shares = confusion_matrix(TRUE, PRED, 3, normalise=True)
    np.testing.assert_allclose(shares, [[2 / 3, 0, 1 / 3], [1 / 2, 1 / 2, 0], [1 / 3, 0, 2 / 3]])
    # A grade without photos keeps a zero row rather than dividing by zero.
    assert confusion_matrix([0, 0], [0, 1], 3, normalise=True)[2].tolist() == [0, 0, 0]


def test_scalar_metrics_match_hand_computed_values():
    assert accuracy(TRUE, PRED) == pytest.approx(5 / 8)
    assert balanced_accuracy(TRUE, PRED) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert mean_grade_error(TRUE, PRED) == pytest.approx((2 + 1 + 2) / 8)
    assert two_grade_error_rate(TRUE, PRED) == pytest.approx(2 / 8)
    # Weights (i-j)^2/4: observed disagreement 2.25, expected 3.25 (worked out by hand).
    assert quadratic_kappa(TRUE, PRED) == pytest.approx(1 - 2.25 / 3.25)
    assert macro_f1(TRUE, PRED) == pytest.approx((4 / 7 + 2 / 3 + 2 / 3) / 3)


def test_per_grade_scores():
    scores = per_grade_scores(TRUE, PRED, ["A", "B", "C"])
    assert scores["A"] == pytest.approx(
        {"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3}
    )
    assert scores["B"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    )


def test_two_grade_errors_count_only_a_for_c_and_c_for_a():
    # B for A and C for B are one grade off: not counted.
    assert two_grade_error_rate([0, 1, 2, 0], [1, 2, 1, 2], 3) == pytest.approx(1 / 4)
    assert mean_grade_error([0, 1, 2, 0], [1, 2, 1, 2], 3) == pytest.approx(5 / 4)


def test_kappa_is_one_when_perfect_and_negative_when_grades_are_reversed():
    assert quadratic_kappa([0, 1, 2, 2], [0, 1, 2, 2]) == pytest.approx(1.0)
    assert quadratic_kappa([0, 0, 2, 2], [2, 2, 0, 0]) == pytest.approx(-1.0)
    # One true grade, all predicted right: chance agreement is already perfect.
    assert math.isnan(quadratic_kappa([1, 1], [1, 1], 3))


def test_log_loss_is_the_mean_negative_log_of_the_true_grade():
    proba = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
    assert log_loss([0, 2], proba) == pytest.approx((-math.log(0.5) - math.log(0.1)) / 2)


def test_bad_inputs_are_named():
    with pytest.raises(SettingsError, match="y_true has 2 grades but y_pred has 3"):
        accuracy([0, 1], [0, 1, 2])
    with pytest.raises(SettingsError, match="integer grade codes"):
        accuracy(["A"], ["A"])
    with pytest.raises(SettingsError, match="0..2"):
        confusion_matrix([0, 3], [0, 1], 3)


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 60)
    pred = np.where(rng.random(60) < 0.7, true, rng.integers(0, 3, 60))
    first = bootstrap_intervals(true, pred, 3, n_boot=300, seed=4)
    again = bootstrap_intervals(true, pred, 3, n_boot=300, seed=4)
    other = bootstrap_intervals(true, pred, 3, n_boot=300, seed=5)
    assert first == again
    assert first["accuracy"] != other["accuracy"]
    for interval in first.values():
        assert interval.low <= interval.value <= interval.high


def test_bootstrap_resamples_whole_fruits():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 40)
    pred = np.where(rng.random(40) < 0.6, true, (true + 1) % 3)
    # Every photo taken twice, the two shots one fruit: resampling fruits must give
    # exactly the intervals of the single shots; resampling photos is overconfident.
    twice_true, twice_pred = np.repeat(true, 2), np.repeat(pred, 2)
    fruits = np.repeat([f"fruit{i:02d}" for i in range(40)], 2)  # sorted as the photos
    single = bootstrap_intervals(true, pred, 3, n_boot=500, seed=0)["accuracy"]
    by_fruit = bootstrap_intervals(twice_true, twice_pred, 3, fruits, n_boot=500, seed=0)
    by_photo = bootstrap_intervals(twice_true, twice_pred, 3, n_boot=500, seed=0)
    assert (by_fruit["accuracy"].low, by_fruit["accuracy"].high) == pytest.approx(
        (single.low, single.high)
    )
    width = by_photo["accuracy"].high - by_photo["accuracy"].low
    assert width < 0.85 * (single.high - single.low)


def test_perfect_grades_have_a_zero_width_interval():
    ci = bootstrap_intervals([0, 1, 2, 0], [0, 1, 2, 0], 3, n_boot=100)
    assert (ci["accuracy"].low, ci["accuracy"].high) == (1.0, 1.0)
    assert ci["two_grade_error_rate"].high == 0.0


def test_evaluate_record_is_valid_json_with_every_part():
    proba = np.eye(3)[PRED] * 0.8 + 0.2 / 3
    record = evaluate(TRUE, PRED, ["A", "B", "C"], proba, list("aabbccdd"), n_boot=200)
    text = json.dumps(record, allow_nan=False)  # undefined values are null, not NaN
    again = json.loads(text)
    assert again["confusion"] == [[2, 0, 1], [1, 1, 0], [1, 0, 2]]
    assert again["metrics"]["accuracy"]["value"] == pytest.approx(5 / 8)
    assert set(again["metrics"]) >= {"quadratic_kappa", "two_grade_error_rate", "log_loss"}
    assert again["bootstrap"] == {
        "replicates": 200,
        "confidence": 0.95,
        "seed": 0,
        "unit": "fruit",
        "n_units": 4,
    }
    single = evaluate([1, 1], [1, 1], ["A", "B", "C"], n_boot=50)
    assert single["metrics"]["quadratic_kappa"]["value"] is None
    json.dumps(single, allow_nan=False)


def test_a_grade_absent_from_the_truth_is_left_out_of_the_means():
    # No C photos: balanced accuracy averages the recalls of A and B only; C's F1 is 0
    # (predicted once, never right), so it counts in macro F1.
    true, pred = [0, 0, 1, 1], [0, 2, 1, 1]
    assert balanced_accuracy(true, pred, 3) == pytest.approx((1 / 2 + 1) / 2)
    assert macro_f1(true, pred, 3) == pytest.approx((2 / 3 + 1 + 0) / 3)
    # Never predicted and never true: undefined, so not averaged.
    assert macro_f1([0, 1], [0, 1], 3) == pytest.approx(1.0)


def test_log_loss_interval_and_photo_units_without_groups():
    proba = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.2, 0.2]])
    record = evaluate([0, 1, 2, 2], [0, 1, 2, 0], ["A", "B", "C"], proba, n_boot=400)
    loss = record["metrics"]["log_loss"]
    assert loss["value"] == pytest.approx(log_loss([0, 1, 2, 2], proba))
    assert loss["low"] < loss["value"] < loss["high"]
    assert record["bootstrap"]["unit"] == "photo" and record["bootstrap"]["n_units"] == 4
