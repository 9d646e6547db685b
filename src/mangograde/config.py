"""Named recipes (presets) and settings merging: model defaults < preset < YAML file < flags.

No torch or scikit-learn here: the CLI lists and shows presets without importing either.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import SettingsError

MODELS = ("svm", "rf", "colour", "cnn")

# Every key a run's settings may hold; a value's type is that of its default here.
_SPLIT = {"cv": 5, "val_fraction": None}
_PIXELS = {"kind": "pixels", "size": 128, "polar": False, "polar_half": False, "expand": "none"}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "svm": {
        "split": _SPLIT,
        "features": _PIXELS,
        "params": {
            "n_components": 200,
            "whiten": False,
            "solver": "auto",
            "kernel": "rbf",
            "C": 1.0,
            "gamma": "scale",
        },
        "search": {"C": [1.0], "gamma": ["scale"], "n_components": [200]},
    },
    "rf": {
        "split": _SPLIT,
        "features": _PIXELS,
        "params": {
            "n_estimators": 100,
            "max_features": "sqrt",
            "min_samples_leaf": 1,
            "min_samples_split": 2,
            "max_depth": None,
            "max_samples": None,
            "class_weight": None,
            "oob_score": False,
            "selection_scaling": None,
            "n_components": None,
            "n_jobs": -1,
        },
    },
    "colour": {
        "split": _SPLIT,
        "features": {**_PIXELS, "kind": "colour-texture"},
        "params": {"C": 0.1, "n_estimators": 500, "n_jobs": -1},
    },
    "cnn": {
        "split": _SPLIT,
        # size: the CNN's input; photos are decoded at size * 256 / 224, then cropped.
        "features": {"size": 128},
        "params": {
            "architecture": "study-cnn",
            "order": "act-bn",
            "activation": "prelu",
            "pooling": "max",
            "dropout": 0.5,
            "dense_layers": 3,
            "width": 32,
            "stem_stride": 1,
            "optimizer": "sgd",
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "schedule": "cosine",
            "warmup_epochs": 0,
            "step_size": 10,
            "step_gamma": 0.1,
            "epochs": 30,
            "batch_size": 32,
            "label_smoothing": 0.0,
            "augment": "batch",
            "ema": 0.0,
            "tta": False,
            "validation_fraction": 0.0,
            "patience": 0,
            "device": "auto",
            "threads": None,
        },
        # folds > 1: that many models on different fruit-grouped splits, then voting.
        "blend": {"folds": 1, "voting": "vote"},
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "svm-study": {
        "model": "svm",
        "description": "The study's best SVM: the 192 x 192 photo warped to polar coordinates "
        "about its centre, PCA 200 without whitening, RBF kernel, C = 1.5, gamma = scale "
        "(keeping only the fruit's half, --set polar_half=true, scored lower in the study).",
        "features": {"size": 192, "polar": True, "polar_half": False},
        "params": {"n_components": 200, "whiten": False, "kernel": "rbf", "C": 1.5},
        "search": {
            "C": [1.0, 1.5, 2.0],
            "gamma": [1e-6, 1e-5, 1e-4, 1e-3],
            "n_components": [50, 100, 200, 500],
        },
    },
    "svm-raw": {
        "model": "svm",
        "description": "PCA 200 + RBF SVM on raw 192 x 192 RGB pixels (the plain recipe).",
        "features": {"size": 192},
        "params": {"n_components": 200, "C": 1.5},
    },
    "rf-study": {
        "model": "rf",
        "description": "The study's forest: 128 x 128 RGB pixels, every photo flipped and rotated "
        "(x8), 1,000 trees, raw and honest OOB. Bootstrap by fruit; 3 pixels tried per split "
        "(`mangograde sweep --param max_features`: 3 beat 10, 30 and the default 221 on "
        "mango-grading, and is far faster on 8x the rows).",
        "features": {"size": 128, "expand": "flip-rotate"},
        "params": {"n_estimators": 1000, "max_features": 3, "oob_score": True},
    },
    "colour-texture": {
        "model": "colour",
        "description": "Beyond the study, the best classical model: photos decoded at 256 px, "
        "328 colour, blemish and texture features of the fruit measured at 128 px (blemish "
        "shares at 3 scales, Lab / hue histograms, LBP, gradients, shape), soft vote of a "
        "logistic regression (C = 0.1) and a 500-tree forest.",
        "features": {"kind": "colour-texture", "size": 256},
    },
    "cnn-study": {
        "model": "cnn",
        "description": "The study's CNN: 224 px (resize 256, centre crop), 10 conv layers in 5 "
        "blocks (PReLU then BatchNorm, max-pooling), dense 512-256-64 with dropout 0.5, SGD "
        "(lr 0.01, momentum 0.9, weight decay 5e-4, cosine), 30 epochs of batches of 32, the "
        "study's flips, rotation, perspective and colour jitter. Slow on a CPU: use a GPU.",
        "features": {"size": 224},
        "params": {"architecture": "study-cnn"},
    },
    "cnn-fast": {
        "model": "cnn",
        "description": "Built for CPUs: fast-cnn (stride-2 stem and max-pool, residual blocks "
        "32-256, average + max pooling; 84 M multiply-adds against study-cnn's 1,075 M) at "
        "128 px, AdamW (lr 0.002, weight decay 0.05, 1 warm-up epoch, cosine), 50 epochs of "
        "batches of 16, label smoothing 0.1, a moving average of the weights (0.99), flip "
        "test-time augmentation, the study's augmentation.",
        "features": {"size": 128},
        "params": {
            "architecture": "fast-cnn",
            "activation": "relu",
            "dropout": 0.2,
            "optimizer": "adamw",
            "lr": 0.002,
            "weight_decay": 0.05,
            "warmup_epochs": 1,
            "epochs": 50,
            "batch_size": 16,
            "label_smoothing": 0.1,
            "ema": 0.99,
            "tta": True,
        },
    },
}

DEFAULT_PRESET = {
    "svm": "svm-study",
    "rf": "rf-study",
    "colour": "colour-texture",
    "cnn": "cnn-fast",
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset(name: str) -> dict[str, Any]:
    """A preset's own settings (not yet merged with its model's defaults)."""
    if name not in PRESETS:
        raise SettingsError(
            f"Unknown preset {name!r}. Valid presets: {', '.join(preset_names())} "
            "(`mangograde presets` lists them)."
        )
    return copy.deepcopy(PRESETS[name])


def register_preset(name: str, settings: Mapping[str, Any]) -> None:
    """Add a named recipe (used by other modules, e.g. the CNN, to add theirs)."""
    if settings.get("model") not in MODELS:
        raise SettingsError(f"Preset {name!r} must name a model, one of {', '.join(MODELS)}.")
    PRESETS[name] = copy.deepcopy(dict(settings))


def register_defaults(model: str, defaults: Mapping[str, Mapping[str, Any]]) -> None:
    _DEFAULTS[model] = copy.deepcopy(dict(defaults))


def _merge(
    base: dict[str, Any],
    override: Mapping[str, Any],
    where: str,
    reference: Mapping[str, Any] | None = None,
) -> None:
    """Merge ``override`` into ``base`` in place; keys must already exist in ``base``.

    Values are checked against the types in ``reference`` (the model's defaults), so a
    preset's ``max_features: 30`` can still be overridden by ``sqrt``.
    """
    reference = base if reference is None else reference
    for key, value in override.items():
        if key not in base:
            valid = ", ".join(sorted(base))
            raise SettingsError(f"Unknown setting {key!r} in {where}. Valid here: {valid}.")
        if isinstance(base[key], dict) and key != "search":
            if not isinstance(value, Mapping):
                raise SettingsError(f"Setting {key!r} in {where} must be a mapping of settings.")
            _merge(base[key], value, f"{where} > {key}", reference.get(key, base[key]))
        else:
            base[key] = _coerce(reference.get(key, base[key]), value, f"{where}: {key}")


def _coerce(default: Any, value: Any, where: str) -> Any:
    """Check a value against its default's type; ints pass for floats."""
    if default is None or value is None or isinstance(default, (list, dict)):
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)):
        if not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, (str, int, float)):
        return value  # e.g. gamma "scale" or 0.001, max_features "sqrt" or 0.3
    raise SettingsError(
        f"{where} must be {type(default).__name__} like {default!r}, got {value!r}."
    )


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """``["params.C=2", "cv=3"]`` -> nested dict; values are read as YAML scalars."""
    result: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set expects key=value (e.g. params.C=2), got {text!r}.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def _qualify(settings: dict[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Let ``C=2`` stand for ``params.C=2`` when exactly one section has the key."""
    qualified: dict[str, Any] = {}
    for key, value in flat.items():
        if key in settings or isinstance(value, Mapping):
            qualified[key] = value
            continue
        owners = [
            s for s, v in settings.items() if isinstance(v, dict) and key in v and s != "search"
        ]
        if len(owners) != 1:
            where = f"several sections ({', '.join(owners)})" if owners else "no section"
            raise SettingsError(
                f"Setting {key!r} is in {where}; write it as section.{key}, e.g. params.{key}."
            )
        qualified.setdefault(owners[0], {})[key] = value
    return qualified


def read_settings_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"Cannot read settings file {path}: {exc.strerror}.") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"Settings file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"Settings file {path} must hold a mapping of settings.")
    return loaded


def resolve(
    model: str | None = None,
    preset_name: str | None = None,
    file: Path | None = None,
    assignments: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fully resolved settings of a run.

    Order of precedence: the model's defaults < the preset < ``file`` < ``assignments``
    (``--set``) < ``overrides`` (dedicated flags such as ``--cv``).
    """
    from_file = read_settings_file(file) if file else {}
    preset_name = preset_name or from_file.pop("preset", None)
    chosen = preset(preset_name) if preset_name else {}
    named = [m for m in (model, from_file.get("model"), chosen.get("model")) if m]
    if not named:
        raise SettingsError(f"Name a model (--model {'|'.join(MODELS)}) or a preset (--preset).")
    model = named[0]
    if model not in _DEFAULTS:
        raise SettingsError(
            f"Unknown model {model!r}. Valid models: {', '.join(sorted(_DEFAULTS))}."
        )
    if chosen.get("model", model) != model:
        raise SettingsError(
            f"Preset {preset_name!r} is for --model {chosen['model']}, not {model}."
        )
    if not preset_name and model in DEFAULT_PRESET:
        preset_name = DEFAULT_PRESET[model]
        chosen = preset(preset_name)
    settings: dict[str, Any] = {"model": model, "preset": preset_name, "seed": 0}
    settings.update(copy.deepcopy(_DEFAULTS[model]))
    reference = copy.deepcopy(settings)
    chosen.pop("model", None)
    chosen.pop("description", None)
    _merge(settings, chosen, f"preset {preset_name}", reference)
    from_file.pop("model", None)
    _merge(settings, _qualify(settings, from_file), f"settings file {file}", reference)
    _merge(settings, _qualify(settings, parse_assignments(assignments)), "--set", reference)
    _merge(settings, _qualify(settings, dict(overrides or {})), "the command line", reference)
    return settings


def dump(settings: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(settings), sort_keys=False, allow_unicode=True)
