"""Estimators (fit / predict / predict_proba on uint8 photos, never folders) and the
registry of model families that builds them by name."""

from . import families  # noqa: F401, I001  (registers the built-in families)
from .registry import (
    FoldData,
    ModelFamily,
    get_model,
    model_names,
    register_model,
    signature_defaults,
)

__all__ = [
    "FoldData",
    "ModelFamily",
    "get_model",
    "model_names",
    "register_model",
    "signature_defaults",
]
