"""Settings checked before anything is trained or written: each of our estimators checks
its own parameters (``check_params``), scikit-learn's are checked by scikit-learn."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

from ..basics.errors import SettingsError


def check_params(estimator: Any) -> None:
    """Check ``estimator``'s parameters and those of every estimator inside it."""
    own = getattr(estimator, "check_params", None)
    if callable(own):
        own()
    elif type(estimator).__module__.startswith("sklearn.") and hasattr(
        estimator, "_parameter_constraints"
    ):
        try:
            estimator._validate_params()
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{type(estimator).__name__}: {exc}") from None
    if not hasattr(estimator, "get_params"):
        return
    for value in estimator.get_params(deep=False).values():
        if hasattr(value, "get_params"):
            check_params(value)
        elif isinstance(value, list):  # a Pipeline's steps, a VotingClassifier's members
            for item in value:
                inner = item[-1] if isinstance(item, tuple) else item
                if hasattr(inner, "get_params"):
                    check_params(inner)


def require(name: str, value: Any, ok: Callable[[Any], bool], expected: str) -> None:
    """``SettingsError`` naming the setting unless ``ok(value)``."""
    try:
        good = ok(value)
    except TypeError:
        good = False
    if not good:
        raise SettingsError(f"Setting {name} must be {expected}, got {value!r}.")


def is_int(value: Any, least: int) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= least


def is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def positive(value: Any) -> bool:
    return is_number(value) and value > 0


def share(value: Any) -> bool:
    """A fraction in (0, 1]."""
    return is_number(value) and not is_int(value, 0) and 0 < value <= 1
