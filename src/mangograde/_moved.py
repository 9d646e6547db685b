"""Old import paths keep working after the modules moved into their layer's folder.

``import mangograde.grading`` (and the other names below) gives a module that forwards every
name to where it lives now, with a ``DeprecationWarning`` saying where that is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings
from typing import Any

MOVED: dict[str, tuple[str, ...]] = {
    "mangograde.ablation": ("mangograde.workflows.ablate",),
    "mangograde.atomic": ("mangograde.basics.atomic",),
    "mangograde.audit": ("mangograde.workflows.audit",),
    "mangograde.comparison": ("mangograde.workflows.compare",),
    "mangograde.config": ("mangograde.basics.config",),
    "mangograde.demo": ("mangograde.workflows.demo",),
    "mangograde.errors": ("mangograde.basics.errors",),
    "mangograde.exporting": ("mangograde.workflows.export",),
    "mangograde.grading": ("mangograde.workflows.predict", "mangograde.workflows.evaluate"),
    "mangograde.inspection": ("mangograde.workflows.inspect",),
    "mangograde.outputs": ("mangograde.basics.outputs",),
    "mangograde.progress": ("mangograde.basics.progress",),
    "mangograde.runs.adapt": ("mangograde.workflows.adapt",),
    "mangograde.runs.train": ("mangograde.workflows.train", "mangograde.runs.fitting"),
    "mangograde.shared_search": ("mangograde.workflows.optuna_search",),
    "mangograde.synth": ("mangograde.data.synth",),
    "mangograde.transforms": ("mangograde.features.transforms",),
    "mangograde.tuning": ("mangograde.workflows.search",),
}


class _Forwarder:  # a meta path finder and loader (importlib.abc costs 50 ms to import)
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        targets = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} has moved: import from {' or '.join(targets)}.",
            DeprecationWarning,
            stacklevel=2,
        )
        homes = [importlib.import_module(name) for name in targets]

        def forward(name: str) -> Any:
            for home in homes:
                if hasattr(home, name):
                    return getattr(home, name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        module.__getattr__ = forward  # type: ignore[method-assign]
        module.__all__ = sorted(  # type: ignore[attr-defined]
            {n for home in homes for n in vars(home) if not n.startswith("_")}
        )


def install() -> None:
    if not any(isinstance(finder, _Forwarder) for finder in sys.meta_path):
        sys.meta_path.append(_Forwarder())
