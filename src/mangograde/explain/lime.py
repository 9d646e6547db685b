"""LIME on superpixels (the ``lime`` package), for any model that grades photos."""

from __future__ import annotations

import numpy as np

from ..basics.progress import track
from .grader import Grader

SUPERPIXELS = 40  # SLIC segments: enough to single out a blemish, few enough to sample
TOP_REGIONS = 5  # regions shown as support, as in the study's figures


def lime_regions(
    predictor: Grader,
    image: np.ndarray,
    target: int,
    samples: int,
    seed: int,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image, per-pixel weight, support mask, superpixels) for grade code ``target``."""
    from lime import lime_image
    from skimage.segmentation import slic

    def segment(photo: np.ndarray) -> np.ndarray:
        return slic(photo, n_segments=SUPERPIXELS, compactness=10, start_label=0)

    def classify(batch: np.ndarray) -> np.ndarray:
        return predictor.predict_proba(np.clip(batch, 0, 255).astype(np.uint8))

    explainer = lime_image.LimeImageExplainer(random_state=seed)
    # lime 0.2 always draws a tqdm bar; ours instead, quiet where progress is off.
    lime_bar = lime_image.tqdm
    lime_image.tqdm = lambda rows: track(rows, len(rows), "LIME samples", progress)
    try:
        found = explainer.explain_instance(
            image,
            classify,
            labels=(target,),
            top_labels=None,
            num_samples=samples,
            batch_size=max(1, min(samples, 100)),
            segmentation_fn=segment,
            random_seed=seed,
        )
    finally:
        lime_image.tqdm = lime_bar
    weights = dict(found.local_exp[target])
    segments = found.segments
    by_segment = np.zeros(segments.max() + 1)
    by_segment[list(weights)] = list(weights.values())
    heat = by_segment[segments]
    ranked = sorted((w, s) for s, w in weights.items() if w > 0)[::-1][:TOP_REGIONS]
    mask = np.isin(segments, [s for _, s in ranked])
    return image, heat, mask, segments
