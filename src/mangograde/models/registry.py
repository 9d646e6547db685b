"""Model families by name: how each is built from settings, and what a run needs of it.

A family is one module that calls :func:`register_model` once. The built-in ones live in
``mangograde.models.families`` (imported with ``mangograde.models``); others are found
through the ``mangograde.models`` entry point group or the ``MANGOGRADE_PLUGINS``
environment variable (module names, comma-separated), so ``--model NAME`` reaches them
from the command line.

Settings of a run: ``model``, ``preset``, ``seed``, ``split``, ``features``, ``params``
and the family's own sections; ``params`` defaults are read from the estimator's
signature (:func:`signature_defaults`), so they are written once, where they are used.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from ..basics import config
from ..basics.errors import SettingsError
from ..images.geometry import Geometry, Resize

Settings = dict[str, Any]
PLUGINS_ENV = "MANGOGRADE_PLUGINS"
ENTRY_POINTS = "mangograde.models"
# only_fold: train fold I of the --cv K split alone (the same fold I as the whole run).
SPLIT = {"cv": 5, "val_fraction": None, "only_fold": None}


@dataclass(frozen=True)
class FoldData:
    """One fold of a run: every decoded photo, and which are trained on or held out.

    ``shared`` is what the family's ``prepare`` computed once for all folds (e.g. the
    features of every photo), or None.
    """

    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray | None
    train: np.ndarray
    test: np.ndarray
    shared: Any = None

    @property
    def train_groups(self) -> np.ndarray | None:
        return None if self.groups is None else self.groups[self.train]


def fit_on_photos(model: Any, fold: FoldData) -> None:
    """Fit on the fold's training photos."""
    model.fit(fold.images[fold.train], fold.labels[fold.train], fold.train_groups)


def grade_photos(model: Any, fold: FoldData) -> tuple[np.ndarray, np.ndarray]:
    """The held-out photos' probabilities and grades, each by the model's own rule."""
    held_out = fold.images[fold.test]
    return model.predict_proba(held_out), model.predict(held_out)


def embed_photos(model: Any, fold: FoldData) -> tuple[np.ndarray, np.ndarray] | None:
    """The fold model's features of its training and held-out photos (its ``embed``), for
    the familiarity model; None when the model has no ``embed``."""
    if not callable(getattr(model, "embed", None)):
        return None
    return model.embed(fold.images[fold.train]), model.embed(fold.images[fold.test])


@dataclass(frozen=True)
class Adaptation:
    """What ``mangograde adapt`` gives a fold model: the new photos, their grades (None:
    ``--unlabelled``), the ``adapt`` settings, and the photos the fold model was trained on
    with their grades (None when the parent's data can no longer be read)."""

    images: np.ndarray
    labels: np.ndarray | None
    settings: Mapping[str, Any]
    old_images: np.ndarray | None = None
    old_labels: np.ndarray | None = None
    progress: bool | None = False


def refit_with(model: Any, task: Adaptation) -> Any:
    """A fresh fit of ``model``'s settings on its training photos and the new ones, each
    new photo counted ``adapt.weight`` times (rounded; unset: as many times as it takes
    the new photos to weigh as much as the old ones, measured best on aicup-sample); on the
    new ones alone when the old ones cannot be read."""
    from sklearn.base import clone

    if task.labels is None:
        raise SettingsError(
            "--unlabelled adapts only the network families (their BatchNorm statistics); "
            "this family learns nothing from photos without grades."
        )
    weight = task.settings.get("weight")
    old = 0 if task.old_labels is None else len(task.old_labels)
    balanced = old / max(1, len(task.labels))
    times = max(1, int(round(float(balanced if weight is None else weight))))
    images, labels = np.repeat(task.images, times, axis=0), np.repeat(task.labels, times)
    if task.old_images is not None and task.old_labels is not None:
        images = np.concatenate([task.old_images, images])
        labels = np.concatenate([task.old_labels, labels])
    return clone(model).fit(images, labels)


def resize_to_features(settings: Settings) -> Geometry:
    """Photos decoded at ``features.size`` square."""
    return Resize(int(settings["features"]["size"]))


def _nothing(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class ModelFamily:
    """What mangograde needs to know of a model family.

    Parameters
    ----------
    name : str
        What ``--model`` calls it.
    build : callable
        ``settings -> unfitted estimator`` (fit / predict / predict_proba on uint8
        ``(n, H, W, 3)`` photos). Invalid settings raise :class:`SettingsError`.
    params : callable
        ``() -> defaults of the params section``; usually :func:`signature_defaults` of
        the estimator, imported only when called.
    features : mapping
        Defaults of the ``features`` section; ``size`` is the decode size.
    sections : mapping
        Defaults of the family's other sections (e.g. ``search``, ``blend``).
    description, presets, default_preset
        Named recipes (name -> settings over the defaults); ``default_preset`` is used when
        only ``--model`` is given.
    geometry : callable
        ``settings -> Geometry`` the photos are decoded at.
    check : callable
        ``settings -> None``; refuses settings that ``build`` accepts but a run cannot use.
    prepare : callable
        ``(unfitted model, images) -> shared``: work done once for all folds.
    fit_fold : callable
        ``(model, FoldData) -> None``: fit on the fold's training photos.
    grade_fold : callable
        ``(fitted model, FoldData) -> (probabilities, grade codes)`` of the held-out photos.
    attach : callable
        ``(model, checkpoint folder or None, resume, progress) -> None`` before a fold is
        fitted, and with ``(None, False, False)`` before it is saved.
    embed_fold : callable
        ``(fitted model, FoldData) -> (training photos' features, held-out photos'
        features)`` for the familiarity model, or None when the family gives none.
    adapt_fold : callable
        ``(fitted fold model, Adaptation) -> adapted model`` for ``mangograde adapt``: a
        model of the same run graded on new photos (a camera, an orchard); raises
        :class:`SettingsError` when the family cannot adapt. Default: refit on the fold's
        training photos and the new ones (weighted), or on the new ones alone.
    history : callable
        ``(fitted model, fold) -> rows`` of per-epoch records (``history.csv``).
    fold_scores : callable
        ``fitted model -> {name: value}`` recorded per fold (e.g. a forest's OOB scores).
    runtime : tuple of str
        Params that change where and how fast a model trains, not what it learns: a
        resumed run may change them.
    draws_progress : bool
        The estimator draws its own progress bar (then the run draws none per fold).
    trusted : tuple of str
        Classes (``module.QualName``) beyond mangograde's and scikit-learn's own that its
        bundles may hold.
    distributed : bool
        Trains on several processes under ``torchrun`` (see :mod:`.ddp`).
    members : callable or None
        For a family whose runs are assembled from other runs (the ensemble): ``settings
        -> the presets or families`` that ``train`` trains first, on the same folds.
    """

    name: str
    build: Callable[[Settings], Any]
    params: Callable[[], Mapping[str, Any]]
    features: Mapping[str, Any] = field(default_factory=lambda: {"size": 128})
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    description: str = ""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_preset: str | None = None
    geometry: Callable[[Settings], Geometry] = resize_to_features
    check: Callable[[Settings], None] = _nothing
    prepare: Callable[[Any, np.ndarray], Any] = _nothing
    fit_fold: Callable[[Any, FoldData], None] = fit_on_photos
    grade_fold: Callable[[Any, FoldData], tuple[np.ndarray, np.ndarray]] = grade_photos
    attach: Callable[[Any, Path | None, bool, bool | None], None] = _nothing
    embed_fold: Callable[[Any, FoldData], tuple[np.ndarray, np.ndarray] | None] = embed_photos
    adapt_fold: Callable[[Any, Adaptation], Any] = lambda model, task: refit_with(model, task)
    history: Callable[[Any, int], list[dict[str, Any]]] = lambda model, fold: []
    fold_scores: Callable[[Any], dict[str, float]] = lambda model: {}
    draws_progress: bool = False
    runtime: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    distributed: bool = False
    members: Callable[[Settings], list[str]] | None = None

    def defaults(self) -> Settings:
        """Every section's defaults, in the order a run's config.yaml lists them."""
        return copy.deepcopy(
            {
                "split": SPLIT,
                "features": dict(self.features),
                "params": dict(self.params()),
                **{k: dict(v) for k, v in self.sections.items()},
            }
        )


# Top-level settings added after 0.1.0, with the meaning older runs had without them.
ADDED_SETTINGS: dict[str, Any] = {
    "decision": "argmax",
    "calibration": "none",
    "abstain": None,
    "fruit": {"rule": "mean"},  # how a fruit's photos become one grade
    # quantile: the share of photos like the training ones not flagged; not_a_fruit: a
    # check in a general image space for what is not a mango at all
    "familiar": {"quantile": 0.99, "not_a_fruit": True},
}

_FAMILIES: dict[str, ModelFamily] = {}
_PRESETS: dict[str, tuple[str, Mapping[str, Any]]] = {}  # name -> (family, settings)
_loaded = False


def register_model(family: ModelFamily) -> ModelFamily:
    """Make ``family`` (and its presets) available by name; registering a name again
    replaces it (a reloaded plugin)."""
    from . import state

    for name in family.presets:
        owner = _PRESETS.get(name, (family.name, {}))[0]
        if owner != family.name:
            raise SettingsError(f"Preset {name!r} of {family.name!r} is already {owner!r}'s.")
    _FAMILIES[family.name] = family
    for name, settings in family.presets.items():
        _PRESETS[name] = (family.name, copy.deepcopy(dict(settings)))
    state.trust(family.trusted)
    return family


def load_families() -> None:
    """Register plugins (entry points, $MANGOGRADE_PLUGINS), once; the built-in families
    are registered when ``mangograde.models`` is imported."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for point in entry_points(group=ENTRY_POINTS):
        try:
            point.load()
        except Exception as exc:  # a plugin is someone else's code: any error, named
            raise SettingsError(
                f"The model plugin {point.value!r} (package entry point {point.name!r}) failed "
                f"to load: {type(exc).__name__}: {exc}. Fix or uninstall that package."
            ) from None
    for module in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SettingsError(
                f"Cannot import model plugin {module!r} named in ${PLUGINS_ENV}: {exc}."
            ) from None
        except Exception as exc:  # it imported, and its own code raised
            raise SettingsError(
                f"The model plugin {module!r} named in ${PLUGINS_ENV} failed while loading: "
                f"{type(exc).__name__}: {exc}. Fix the plugin, or leave it out of "
                f"${PLUGINS_ENV}."
            ) from None


def model_names() -> list[str]:
    load_families()
    return sorted(_FAMILIES)


def get_model(name: str) -> ModelFamily:
    """The family called ``name``; an unknown name lists the valid ones."""
    load_families()
    if name not in _FAMILIES:
        raise SettingsError(f"Unknown model {name!r}. Valid models: {', '.join(model_names())}.")
    return _FAMILIES[name]


def preset_names() -> list[str]:
    load_families()
    return sorted(_PRESETS)


def preset_info(name: str) -> tuple[str, str]:
    """(model, description) of a preset."""
    model, settings = _preset(name)
    return model, str(settings.get("description", ""))


def _preset(name: str) -> tuple[str, dict[str, Any]]:
    load_families()
    if name not in _PRESETS:
        raise SettingsError(
            f"Unknown preset {name!r}. Valid presets: {', '.join(preset_names())} "
            "(`mangograde presets` lists them)."
        )
    model, settings = _PRESETS[name]
    return model, copy.deepcopy(dict(settings))


def signature_defaults(
    *estimators: Callable[..., Any],
    exclude: Sequence[str] = (),
    only: Sequence[str] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """The keyword defaults of ``estimators``' constructors (later ones add theirs),
    less ``exclude`` or just ``only`` those; ``overrides`` set a family's own default.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> signature_defaults(LogisticRegression, only=("C", "max_iter"), max_iter=1000)
    {'C': 1.0, 'max_iter': 1000}
    """
    found: dict[str, Any] = {}
    for estimator in estimators:
        for name, parameter in inspect.signature(estimator).parameters.items():
            wanted = name not in exclude and (only is None or name in only)
            if parameter.default is not inspect.Parameter.empty and wanted:
                found.setdefault(name, parameter.default)
    unknown = sorted(set(overrides) - set(found))
    if unknown:
        raise TypeError(f"No parameter {', '.join(unknown)} to override.")
    return {**found, **overrides}


def resolve(
    model: str | None = None,
    preset_name: str | None = None,
    file: Path | None = None,
    assignments: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """The fully resolved settings of a run.

    Order of precedence: the family's defaults < the preset < ``file`` < ``assignments``
    (``--set``) < ``overrides`` (dedicated flags such as ``--cv``).
    """
    from_file = config.read_settings_file(file) if file else {}
    preset_name = preset_name or from_file.pop("preset", None)
    preset_model, chosen = _preset(preset_name) if preset_name else (None, {})
    named = [m for m in (model, from_file.get("model"), preset_model) if m]
    if not named:
        raise SettingsError(
            f"Name a model (--model {'|'.join(model_names())}) or a preset (--preset)."
        )
    family = get_model(named[0])
    if preset_model not in (None, family.name):
        raise SettingsError(
            f"Preset {preset_name!r} is for --model {preset_model}, not {family.name}."
        )
    if not preset_name and family.default_preset:
        preset_name = family.default_preset
        chosen = _preset(preset_name)[1]
    settings: Settings = {"model": family.name, "preset": preset_name, "seed": 0,
                          **copy.deepcopy(ADDED_SETTINGS)}  # fmt: skip
    settings["calibration"] = "auto"  # new runs: calibrated where held-out photos allow it
    settings.update(family.defaults())
    reference = copy.deepcopy(settings)
    chosen.pop("description", None)
    from_file.pop("model", None)
    layers = [
        (chosen, f"preset {preset_name}"),
        (from_file, f"settings file {file}"),
        (config.parse_assignments(assignments), "--set"),
        (dict(overrides or {}), "the command line"),
    ]
    for values, where in layers:
        config.merge(settings, config.qualify(settings, values), where, reference)
    seed = settings["seed"]
    if not (isinstance(seed, int) and 0 <= seed < 2**32):
        raise SettingsError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}.")
    return settings


def build_model(settings: Settings) -> Any:
    """An unfitted estimator for resolved ``settings``."""
    return get_model(settings["model"]).build(settings)
