"""Issue 27: does mango-grading help grade aicup-sample from 30 labelled photos at all?

    python benchmarks/bench_adapt_features.py COLOUR_RUN [--sizes 30] [--repeats 5]

COLOUR_RUN: a colour-texture run trained on mango-grading (its 328 features are measured
on both sets); the second feature space is EfficientNet-Lite0's ImageNet features (frozen,
pooled, 1280). In each space, a scaled logistic regression (C = 0.1) graded on the photos
not labelled, with the same stratified draws as bench_adapt.py:
- scratch: the n labelled aicup photos alone;
- refit: mango-grading's 600 and the n new photos weighing as much;
- aligned: as refit, the new photos' features first moved to mango-grading's
  (class-balanced mean and within-grade spread matched);
- augmented: shared and per-set copies of every feature (Daume 2007), C = 0.01, the new
  photos counted 5 times, each set scaled by its own statistics.
Also how well the mango-grading model's expected grade ranks aicup's grades (Spearman).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402
from bench_adapt import stratified  # noqa: E402


def spaces(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    import torch

    from mangograde.data import load_dataset
    from mangograde.features.transforms import MEAN, STD
    from mangograde.images import ImageCache, load_images
    from mangograde.images.geometry import Resize
    from mangograde.models.pretrained import PretrainedNet
    from mangograde.runs import open_run
    from mangograde.runs.folder import geometry_from_record

    aicup, mango = data_dir("aicup-sample"), data_dir("mango-grading")
    new = load_dataset(aicup / "sample_image", aicup / "Sample_Label.csv")
    old = load_dataset(mango, None, mango / "fruit_groups.csv")
    cache = ImageCache()
    bundle = open_run(run).bundles()[0]
    geometry = geometry_from_record(bundle.manifest["preprocessing"]["geometry"])
    net = PretrainedNet(size=192).eval()
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)

    def lite0(paths) -> np.ndarray:
        photos = load_images(list(paths), Resize(192), cache).arrays
        with torch.no_grad():
            x = (torch.from_numpy(photos).permute(0, 3, 1, 2).float() / 255 - mean) / std
            return np.concatenate([net.features(b * net.scale + net.shift).mean(dim=(2, 3))
                                   .numpy() for b in x.split(32)])  # fmt: skip

    def colour(paths) -> np.ndarray:
        return bundle.model.embed(load_images(list(paths), geometry, cache).arrays)

    y_old, y_new = np.asarray(old.labels), np.asarray(new.labels)
    return {name: (f(old.paths), y_old, f(new.paths), y_new)
            for name, f in (("colour-texture", colour), ("Lite0 ImageNet", lite0))}  # fmt: skip


def _moments(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grades = np.unique(y)
    within = np.concatenate([x[y == g] - x[y == g].mean(0) for g in grades])
    return np.mean([x[y == g].mean(0) for g in grades], axis=0), within.std(0) + 1e-9


def arms(xo, yo, xl, yl, xt) -> dict[str, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def logistic(x, y, weights=None, c=0.1):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        return model.fit(x, y, logisticregression__sample_weight=weights)

    both_y = np.concatenate([yo, yl])
    weights = np.concatenate([np.ones(len(yo)), np.full(len(yl), len(yo) / len(yl))])
    (mu_n, sd_n), (mu_o, sd_o) = _moments(xl, yl), _moments(xo, yo)
    moved = lambda x: (x - mu_n) / sd_n * sd_o + mu_o  # noqa: E731
    own_o, own_n = StandardScaler().fit(xo), StandardScaler().fit(xl)
    a_o, a_l, a_t = own_o.transform(xo), np.nan_to_num(own_n.transform(xl)), own_n.transform(xt)
    a_t = np.nan_to_num(a_t)
    augmented = np.vstack([np.hstack([a_o, a_o, 0 * a_o]), np.hstack([a_l, 0 * a_l, a_l])])
    shared = np.concatenate([np.ones(len(yo)), np.full(len(yl), 5.0)])
    return {
        "parent": logistic(xo, yo).predict(xt),
        "scratch": logistic(xl, yl).predict(xt),
        "refit": logistic(np.vstack([xo, xl]), both_y, weights).predict(xt),
        "aligned": logistic(np.vstack([xo, moved(xl)]), both_y, weights).predict(moved(xt)),
        "augmented": logistic(augmented, both_y, shared, 0.01).predict(
            np.hstack([a_t, 0 * a_t, a_t])
        ),
    }


def main() -> None:
    from scipy.stats import spearmanr
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--sizes", default="30")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    for name, (xo, yo, xn, yn) in spaces(args.run).items():
        parent = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
        expected = parent.fit(xo, yo).predict_proba(xn) @ np.arange(3)
        print(f"{name}: mango-grading's expected grade against aicup's grades, Spearman "
              f"{spearmanr(expected, yn).statistic:.2f}")  # fmt: skip
        for n in map(int, args.sizes.split(",")):
            scores: dict[str, list[float]] = {}
            for repeat in range(args.repeats):
                labelled = stratified(yn, n, np.random.default_rng(1000 * n + repeat))
                rest = np.setdiff1d(np.arange(len(yn)), labelled)
                for arm, graded in arms(xo, yo, xn[labelled], yn[labelled], xn[rest]).items():
                    scores.setdefault(arm, []).append(float(np.mean(graded == yn[rest])))
            line = ", ".join(f"{a} {np.mean(v):.3f} +- {np.std(v):.3f}" for a, v in scores.items())
            print(f"  n = {n} ({args.repeats} repeats): {line}", flush=True)


if __name__ == "__main__":
    main()
