"""Issue 26: does labelling what ``suggest`` picks teach a run more than labelling at random?

    python benchmarks/bench_suggest.py [--seeds 5] [--trees 100] [--out suggest-results.json]

A simulated loop on mango-grading's 5 folds by fruit (StratifiedGroupKFold, the held-out
fold never labelled): start from 20 fruits of the training fold drawn at random (the same
for both arms of a seed), then add 10 fruits a round, chosen by ``suggest``'s own selection
(:func:`mangograde.evaluation.selection.pick` on the margin of the current model's
probabilities, fruits pooled from their photos, colour-texture features standardised) or
at random; the colour-texture vote is refit each round (``--trees`` trees in the forest
instead of the preset's 500, to keep the loop short) and scored on the held-out fold.
Photos are decoded and measured once. Reports the mean and spread (over seeds x folds) of
each arm's accuracy by labelled fruits, and how many fruits ``suggest`` needs to reach
random choice's accuracy at 100.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402

START, STEP, LAST = 20, 10, 130


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mangograde.data import load_dataset
    from mangograde.images import ImageCache, Resize, load_images
    from mangograde.models.classical import features_of, pixel_features

    root = data_dir("mango-grading")
    dataset = load_dataset(root, groups=root / "fruit_groups.csv")
    images = load_images(list(dataset.paths), Resize(256), ImageCache()).arrays
    started = time.perf_counter()
    features = features_of(pixel_features({"kind": "colour-texture"}), images)
    print(f"features of {len(images)} photos in {time.perf_counter() - started:.0f} s", flush=True)
    return features, np.asarray(dataset.labels), np.asarray(dataset.groups)


def loop(
    X, y, groups, train, test, arm: str, seed: int, trees: int, candidates: float
) -> list[float]:
    from mangograde.evaluation.selection import pick, pooled, standardised, uncertainty
    from mangograde.models.classical import colour_vote

    rng = np.random.default_rng(seed)
    pool = sorted(set(groups[train]))
    rows = {f: np.flatnonzero(groups == f) for f in pool}
    labelled = list(rng.choice(pool, START, replace=False))
    space = standardised([X[train]])[0]
    where = {i: k for k, i in enumerate(train)}
    curve = []
    while True:
        chosen = np.concatenate([rows[f] for f in labelled])
        model = colour_vote(n_estimators=trees, n_jobs=1, random_state=0).fit(X[chosen], y[chosen])
        curve.append(float(np.mean(model.predict(X[test]) == y[test])))
        rest = [f for f in pool if f not in labelled]
        if len(labelled) >= LAST or len(rest) < STEP:
            return curve
        if arm == "random":
            labelled += list(rng.choice(rest, STEP, replace=False))
            continue
        proba = model.predict_proba(X[train])
        unsure = uncertainty(proba)
        fruits = [np.array([where[i] for i in rows[f]]) for f in [*rest, *labelled]]
        items = pooled([space], fruits)[0]
        mean_unsure = np.array([unsure[m].mean() for m in fruits[: len(rest)]])
        found = pick(mean_unsure, [items[: len(rest)]], STEP, [items[len(rest) :]],
                     candidates=candidates)  # fmt: skip
        labelled += [rest[i] for i in found.order]


def main() -> None:
    from sklearn.model_selection import StratifiedGroupKFold

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--candidates", type=float, default=2.0, help="suggest's pool: x n")
    parser.add_argument("--out", type=Path, default=Path("suggest-results.json"))
    args = parser.parse_args()
    X, y, groups = load()
    folds = list(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(X, y, groups))
    curves: dict[str, list[list[float]]] = {"random": [], "suggest": []}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for k, (train, test) in enumerate(folds):
            for arm in curves:
                curves[arm].append(
                    loop(
                        X, y, groups, train, test, arm, 100 * seed + k, args.trees, args.candidates
                    )
                )
        print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    sizes = list(range(START, START + STEP * len(curves["random"][0]), STEP))
    summary = {
        arm: {
            "mean": np.mean(c, axis=0).round(4).tolist(),
            "sd": np.std(c, axis=0).round(4).tolist(),
        }
        for arm, c in curves.items()
    }
    target = summary["random"]["mean"][sizes.index(100)]
    reached = next((n for n, a in zip(sizes, summary["suggest"]["mean"], strict=True)
                    if a >= target), None)  # fmt: skip
    results = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "seeds": args.seeds,
        "folds": 5, "trees": args.trees, "candidates": args.candidates, "fruits": sizes, **summary,
        "random_accuracy_at_100": target, "suggest_fruits_to_reach_it": reached,
        "share_of_labels": None if reached is None else reached / 100,
    }  # fmt: skip
    args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))
    with args.out.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fruits", "random_mean", "random_sd", "suggest_mean", "suggest_sd"])
        for i, n in enumerate(sizes):
            row = [summary[arm][key][i] for arm in ("random", "suggest") for key in ("mean", "sd")]
            writer.writerow([n, *row])


if __name__ == "__main__":
    main()
