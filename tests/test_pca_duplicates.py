"""A duplicated or near-constant photo must not break the SVM's PCA (issue: one exact
duplicate in a fold made svm-study grade every held-out photo the same)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mangograde.models.svm import PCASVC, GramPCA


def _photos(seed: int, n: int = 45, d: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Float32 pixel-like vectors whose mean differs by grade."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(128, 30, (n, d)) + y[:, None] * 12.0
    return X.astype(np.float32), y


@pytest.mark.parametrize("kind", ["duplicate", "constant"])
def test_pca_keeps_unit_vectors_and_new_photos_stay_graded(kind):
    X, y = _photos(0)
    if kind == "duplicate":
        X, y = np.vstack([X, X[:1]]), np.append(y, y[0])
    else:  # three flat grey photos, one per grade
        X[:3] = 128.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pca = GramPCA(len(X)).fit(X)
    norms = np.linalg.norm(pca.components_, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3), norms.max()
    new, new_y = _photos(1, n=30)
    assert np.abs(pca.transform(new)).max() < 1e5  # was ~1e8 along a noise direction
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        svm = PCASVC(n_components=len(X), random_state=0).fit(X, y)
    graded = svm.predict(new)
    assert len(np.unique(graded)) == 3
    assert np.mean(graded == new_y) > 0.8
