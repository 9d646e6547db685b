"""Numba kernels of the forest: CART trees on 8-bit features, prediction and OOB votes.

Pixels are integers 0-255, so a 256-bin histogram per feature finds exactly the splits a
sorting CART would (thresholds between consecutive values), in one pass over a node's
photos instead of a sort (small nodes are sorted). Features are stored feature-major
(``XT[feature, photo]``), so a node reads each candidate feature from one short column.

Training rows are virtual: row ``s`` is photo ``base_of[s]`` seen through copy
``op_of[s]``, whose feature ``f`` is the photo's feature ``perms[f, op_of[s]]``. A flip or
a rotation only permutes pixels, so the x8 flip/rotate expansion costs no memory and the
photos stay small enough to be read from the processor's cache.

A fitted tree is a set of flat arrays: ``feature`` (-1 at leaves), ``threshold`` (go left
when ``x <= threshold``), ``left``, ``right``, ``value`` (weighted class counts),
``impurity`` and ``weight`` (weighted photos) per node.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MIN_IMPURITY = 1e-12


@njit(cache=True, nogil=True)
def _gini(counts: np.ndarray, total: float) -> float:
    if total <= 0.0:
        return 0.0
    s = 0.0
    for k in range(counts.shape[0]):
        p = counts[k] / total
        s += p * p
    return 1.0 - s


@njit(cache=True, nogil=True, inline="always")
def _split_gain(
    left: np.ndarray,
    node_counts: np.ndarray,
    w_left: float,
    node_weight: float,
    n_left: int,
    n_node: int,
    min_leaf: int,
    min_weight: float,
) -> float:
    """Gini proxy of a split, larger is purer (as scikit-learn's); -1 when not allowed."""
    w_right = node_weight - w_left
    if n_left < min_leaf or n_node - n_left < min_leaf:
        return -1.0
    if w_left < min_weight or w_right < min_weight or w_left <= 0.0 or w_right <= 0.0:
        return -1.0
    sl, sr = 0.0, 0.0
    for k in range(node_counts.shape[0]):
        sl += left[k] * left[k]
        r = node_counts[k] - left[k]
        sr += r * r
    return sl / w_left + sr / w_right


@njit(cache=True, nogil=True)
def _best_split_on(
    XT: np.ndarray,
    perms: np.ndarray,
    base_of: np.ndarray,
    op_of: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    samples: np.ndarray,
    start: int,
    end: int,
    f: int,
    hist: np.ndarray,
    count: np.ndarray,
    node_counts: np.ndarray,
    node_weight: float,
    min_leaf: int,
    min_weight: float,
    distinct: np.ndarray,
    values: np.ndarray,
    left: np.ndarray,
) -> tuple[float, int, bool]:
    """Best (Gini proxy gain, threshold) of feature ``f``; the flag says it is constant.

    One pass fills a 256-bin histogram and lists the distinct values; thresholds are then
    tried in value order, over the listed values when there are few of them (small
    nodes), otherwise over the bins. Only the bins used are cleared afterwards, so a
    small node costs in proportion to its photos, not to 256 bins. ``hist`` and ``count``
    are all zero on entry and on return; ``distinct`` and ``left`` are scratch space.
    """
    n_classes = hist.shape[1]
    rows_f = perms[f]
    n_node = end - start
    # Gather first: independent loads the processor can overlap.
    for i in range(n_node):
        s = samples[start + i]
        values[i] = XT[rows_f[op_of[s]], base_of[s]]
    lo, hi = 255, 0
    for i in range(n_node):
        lo = min(lo, values[i])
        hi = max(hi, values[i])
    if lo == hi:
        return -1.0, 0, True
    for i in range(n_node):
        s = samples[start + i]
        v = values[i]
        count[v] += 1
        hist[v, y[s]] += w[s]
    listed = n_node * n_node < 4 * (hi - lo)
    n_distinct = 0
    if listed:  # few photos: sort their distinct values rather than scan the bins
        for i in range(n_node):
            v = values[i]
            if count[v] > 0 and (n_distinct == 0 or v not in distinct[:n_distinct]):
                j = n_distinct
                while j > 0 and distinct[j - 1] > v:
                    distinct[j] = distinct[j - 1]
                    j -= 1
                distinct[j] = v
                n_distinct += 1
    best_gain, best_thr = -1.0, 0
    left[:] = 0.0
    n_left, w_left = 0, 0.0
    n_steps = n_distinct - 1 if listed else hi - lo
    for step in range(n_steps):
        v = distinct[step] if listed else lo + step
        if count[v] == 0:
            continue
        n_left += count[v]
        for k in range(n_classes):
            left[k] += hist[v, k]
            w_left += hist[v, k]
        gain = _split_gain(
            left, node_counts, w_left, node_weight, n_left, n_node, min_leaf, min_weight
        )
        if gain > best_gain:
            best_gain, best_thr = gain, v
    if listed or n_node < hi - lo:
        for i in range(n_node):
            v = values[i]
            count[v] = 0
            for k in range(n_classes):
                hist[v, k] = 0.0
    else:
        count[lo : hi + 1] = 0
        hist[lo : hi + 1] = 0.0
    return best_gain, best_thr, False


@njit(cache=True, nogil=True)
def build_tree(
    XT: np.ndarray,
    perms: np.ndarray,
    base_of: np.ndarray,
    op_of: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    n_classes: int,
    max_features: int,
    min_samples_split: int,
    min_leaf: int,
    min_weight_fraction: float,
    max_depth: int,
    seed: int,
):
    """Grow one tree on the rows with ``w > 0``; returns its node arrays."""
    np.random.seed(seed)  # noqa: NPY002 - Numba's per-thread generator, seeded per tree
    n_features = perms.shape[0]
    samples = np.flatnonzero(w > 0).astype(np.int64)
    n = samples.shape[0]
    capacity = 2 * n + 1
    feature = np.full(capacity, -1, np.int64)
    threshold = np.zeros(capacity, np.uint8)
    left = np.full(capacity, -1, np.int64)
    right = np.full(capacity, -1, np.int64)
    value = np.zeros((capacity, n_classes))
    impurity = np.zeros(capacity)
    weight = np.zeros(capacity)
    total_weight = 0.0
    for i in range(n):
        total_weight += w[samples[i]]
    min_weight = min_weight_fraction * total_weight
    features = np.arange(n_features)
    hist = np.zeros((256, n_classes))
    count = np.zeros(256, np.int64)
    distinct = np.empty(256, np.int64)
    values = np.empty(n, np.int64)
    spill = np.empty(n, np.int64)
    scratch = np.zeros(n_classes)
    # Stack of (start, end, depth, node).
    stack = np.zeros((capacity, 4), np.int64)
    stack[0] = (0, n, 0, 0)
    top, n_nodes = 1, 1
    while top > 0:
        top -= 1
        start, end, depth, node = stack[top]
        counts = value[node]
        for i in range(start, end):
            s = samples[i]
            counts[y[s]] += w[s]
        node_weight = counts.sum()
        weight[node] = node_weight
        impurity[node] = _gini(counts, node_weight)
        n_node = end - start
        if (
            depth >= max_depth
            or n_node < min_samples_split
            or n_node < 2 * min_leaf
            or node_weight < 2 * min_weight
            or impurity[node] <= _MIN_IMPURITY
        ):
            continue
        best_gain, best_f, best_thr = -1.0, -1, 0
        drawn, visited = 0, 0
        # Draw features without replacement until max_features non-constant ones were
        # tried (constant ones do not count), as scikit-learn does.
        while drawn < max_features and visited < n_features:
            j = visited + np.random.randint(n_features - visited)  # noqa: NPY002
            features[visited], features[j] = features[j], features[visited]
            f = features[visited]
            visited += 1
            gain, thr, constant = _best_split_on(
                XT, perms, base_of, op_of, y, w, samples, start, end, f, hist, count, counts,
                node_weight, min_leaf, min_weight, distinct, values, scratch,
            )  # fmt: skip
            if constant:
                continue
            drawn += 1
            if gain > best_gain:
                best_gain, best_f, best_thr = gain, f, thr
        if best_f < 0:
            continue
        rows_f = perms[best_f]
        # Stable partition (left part x <= thr): each node keeps its rows in memory order,
        # so reading a feature's values walks forward through it.
        i, n_right = start, 0
        for p in range(start, end):
            s = samples[p]
            if XT[rows_f[op_of[s]], base_of[s]] <= best_thr:
                samples[i] = s
                i += 1
            else:
                spill[n_right] = s
                n_right += 1
        samples[i:end] = spill[:n_right]
        feature[node], threshold[node] = best_f, best_thr
        left[node], right[node] = n_nodes, n_nodes + 1
        stack[top] = (i, end, depth + 1, n_nodes + 1)
        stack[top + 1] = (start, i, depth + 1, n_nodes)
        top += 2
        n_nodes += 2
    return (
        feature[:n_nodes].copy(),
        threshold[:n_nodes].copy(),
        left[:n_nodes].copy(),
        right[:n_nodes].copy(),
        value[:n_nodes].copy(),
        impurity[:n_nodes].copy(),
        weight[:n_nodes].copy(),
    )


@njit(cache=True, nogil=True)
def leaf_of(feature, threshold, left, right, offset, x) -> int:
    node = 0
    while feature[offset + node] >= 0:
        if x[feature[offset + node]] <= threshold[offset + node]:
            node = left[offset + node]
        else:
            node = right[offset + node]
    return offset + node


@njit(cache=True, nogil=True)
def forest_proba(feature, threshold, left, right, proba, offsets, X, out) -> None:
    """Add every tree's leaf class fractions for each row of ``X`` into ``out``."""
    for t in range(offsets.shape[0] - 1):
        for i in range(X.shape[0]):
            leaf = leaf_of(feature, threshold, left, right, offsets[t], X[i])
            for k in range(out.shape[1]):
                out[i, k] += proba[leaf, k]


@njit(cache=True, nogil=True)
def oob_votes(
    feature, threshold, left, right, proba, offset, XT, perms, base_of, op_of, rows, out
) -> None:
    """Add one tree's class fractions for the virtual training rows ``rows`` into ``out``."""
    for r in rows:
        node = 0
        while feature[offset + node] >= 0:
            at = offset + node
            if XT[perms[feature[at], op_of[r]], base_of[r]] <= threshold[at]:
                node = left[at]
            else:
                node = right[at]
        for k in range(out.shape[1]):
            out[r, k] += proba[offset + node, k]
