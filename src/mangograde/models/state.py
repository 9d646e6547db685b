"""A checked, code-free format for fitted scikit-learn style estimators.

An estimator becomes a JSON tree (``model.json``) of plain values and objects named by
their class, plus its numbers as arrays in ``arrays.npz`` (read with
``allow_pickle=False``). Loading rebuilds an object only when its class is in
``ALLOWED``, by ``cls.__new__`` and ``__setstate__``: no constructor, no pickle, nothing
from the file is ever called. Unlike pickle, an unknown or hostile entry is refused
with its name.
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
import zlib
from typing import Any

import numpy as np

# Classes a bundle may hold.
ALLOWED = frozenset(
    {
        "mangograde.models.classical.PhotoClassifier",
        "mangograde.models.classical.ReducedForest",
        "mangograde.models.forest.GroupForestClassifier",
        "mangograde.models.svm.GramPCA",
        "mangograde.models.svm.PCASVC",
        "mangograde.models.cnn_estimator.CNNClassifier",
        "mangograde.models.blend.FoldEnsemble",
        "mangograde.features.pixels.PixelVectors",
        "mangograde.features.polar.PolarWarp",
        "mangograde.features.colour.ColourTexture",
        "sklearn.pipeline.Pipeline",
        "sklearn.svm._classes.SVC",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.feature_selection._from_model.SelectFromModel",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.ensemble._voting.VotingClassifier",
        "sklearn.decomposition._pca.PCA",
    }
)
_BUNCH = "sklearn.utils._bunch.Bunch"
_trusted: set[str] = set()  # added by registered model families (their own classes)


def trust(names: tuple[str, ...] | frozenset[str]) -> None:
    """Allow a registered family's own classes in bundles."""
    _trusted.update(names)


def _allowed(name: str) -> bool:
    return name in ALLOWED or name in _trusted


class StateError(ValueError):
    """The object cannot be written, or the file is not one this module wrote."""


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def node(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "O":
                return {"object_array": [self.node(v) for v in value.ravel()], "shape": value.shape}
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"array": key}
        if isinstance(value, np.generic):
            return {"scalar": value.dtype.str, "value": value.item()}
        if isinstance(value, np.dtype):
            return {"dtype": value.str}
        if isinstance(value, (list, tuple)):
            return {"list" if isinstance(value, list) else "tuple": [self.node(v) for v in value]}
        if _name(type(value)) == _BUNCH:
            return {"bunch": [[k, self.node(v)] for k, v in value.items()]}
        if type(value) is dict:
            return {"dict": [[self.node(k), self.node(v)] for k, v in value.items()]}
        name = _name(type(value))
        if not _allowed(name):
            raise StateError(f"Cannot save an object of type {name} in a model bundle.")
        state = value.__getstate__() if hasattr(value, "__getstate__") else vars(value)
        if not isinstance(state, dict):
            raise StateError(f"Cannot save {name}: its state is not a mapping.")
        return {"object": name, "state": self.node(state)}


MAX_DEPTH = 64  # far deeper than any estimator nests; a deeper file is hostile


class _Reader:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.depth = 0

    def node(self, node: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise StateError(f"entries nested deeper than {MAX_DEPTH} levels")
            return self._node(node)
        finally:
            self.depth -= 1

    def _node(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise StateError(f"Unexpected entry {str(node)[:80]!r}.")
        if "array" in node:
            if node["array"] not in self.arrays:
                raise StateError(f"it names array {str(node['array'])[:40]!r}, not in the file")
            return self.arrays[node["array"]]
        if "object_array" in node:
            items = [self.node(v) for v in node["object_array"]]
            out = np.empty(len(items), dtype=object)
            out[:] = items
            return out.reshape(node["shape"])
        if "scalar" in node:
            return np.dtype(node["scalar"]).type(node["value"])
        if "dtype" in node:
            return np.dtype(node["dtype"])
        if "list" in node:
            return [self.node(v) for v in node["list"]]
        if "tuple" in node:
            return tuple(self.node(v) for v in node["tuple"])
        if "dict" in node:
            return {self.node(k): self.node(v) for k, v in node["dict"]}
        if "bunch" in node:
            from sklearn.utils import Bunch

            return Bunch(**{k: self.node(v) for k, v in node["bunch"]})
        if "object" in node:
            return self.rebuild(node["object"], self.node(node["state"]))
        raise StateError(f"Unexpected entry {str(node)[:80]!r}.")

    @staticmethod
    def rebuild(name: str, state: Any) -> Any:
        if not _allowed(name):
            raise StateError(f"the file names the type {name}, which is not allowed")
        module, _, qualname = name.rpartition(".")
        cls = getattr(importlib.import_module(module), qualname)
        obj = cls.__new__(cls)
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj


def dumps(estimator: Any) -> tuple[bytes, bytes]:
    """``(model.json bytes, arrays.npz bytes)`` of a fitted estimator."""
    writer = _Writer()
    tree = json.dumps({"format": "mangograde-state", "root": writer.node(estimator)})
    buffer = io.BytesIO()
    np.savez(buffer, **writer.arrays)
    return tree.encode(), buffer.getvalue()


def loads(tree: bytes, arrays: bytes) -> Any:
    """Rebuild an estimator written by :func:`dumps`; raises StateError on anything else."""
    try:
        document = json.loads(tree)
        with np.load(io.BytesIO(arrays), allow_pickle=False) as stored:
            loaded = {key: stored[key] for key in stored.files}
    except RecursionError:
        raise StateError("entries nested too deep to read") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise StateError(f"not a readable model file ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != "mangograde-state":
        raise StateError("not a mangograde model file")
    if "root" not in document:
        raise StateError("the file holds no model")
    try:
        return _Reader(loaded).node(document["root"])
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        # A rebuilt object refused its state (e.g. a forest's malformed trees, a network
        # whose weights do not fit it).
        raise StateError(f"{type(exc).__name__}: {str(exc)[:300]}") from None
