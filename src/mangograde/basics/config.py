"""Settings merging: a family's defaults < preset < YAML file < flags (see
:func:`mangograde.models.registry.resolve`, which knows the families and their presets).

No torch or scikit-learn here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import SettingsError


def merge(
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
            raise SettingsError(
                f"Unknown setting {key!r} in {where}. Valid here: {valid}."
                + (f" {settings_of(base)}" if "model" in base else "")
            )
        if isinstance(base[key], dict) and key != "search":
            if not isinstance(value, Mapping):
                raise SettingsError(f"Setting {key!r} in {where} must be a mapping of settings.")
            merge(base[key], value, f"{where} > {key}", reference.get(key, base[key]))
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
    import yaml  # here: grading an export needs no YAML

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


def qualify(settings: dict[str, Any], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Let ``C=2`` stand for ``params.C=2`` when exactly one section has the key."""
    qualified: dict[str, Any] = {}
    for key, value in flat.items():
        if key in settings or isinstance(value, Mapping):
            qualified[key] = value
            continue
        owners = [
            s for s, v in settings.items() if isinstance(v, dict) and key in v and s != "search"
        ]
        if len(owners) > 1:
            raise SettingsError(
                f"Setting {key!r} is in several sections ({', '.join(owners)}); write it as "
                f"section.{key}, e.g. {owners[0]}.{key}."
            )
        if not owners:
            raise SettingsError(
                f"--model {settings.get('model')} has no setting {key!r}. {settings_of(settings)}"
            )
        qualified.setdefault(owners[0], {})[key] = value
    return qualified


def settings_of(settings: Mapping[str, Any]) -> str:
    """``Its settings: params: C, gamma; features: size`` for an error message."""
    sections = [
        f"{name}: {', '.join(value)}"
        for name, value in settings.items()
        if isinstance(value, dict) and name not in ("search", "data")
    ]
    return f"Its settings are {'; '.join(sections)}."


def read_settings_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"Cannot read settings file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"Settings file {path} is not UTF-8 text (byte {exc.start}).") from None
    except RecursionError:
        raise SettingsError(f"Settings file {path} is nested too deeply to be settings.") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"Settings file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"Settings file {path} must hold a mapping of settings.")
    return loaded


def dump(settings: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(settings), sort_keys=False, allow_unicode=True)
