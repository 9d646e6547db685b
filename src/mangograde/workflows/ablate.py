"""``mangograde ablate``: the study's one-factor comparisons, every variant on one split.

Each ``--vary key=a,b`` trains the base recipe with ``key`` set to each value in turn
(one factor at a time, the rest as in the base), on the same fruit-grouped split:
``--val-fraction``'s hold-out, or fold 0 of ``--cv``. A value may carry settings that go
with it: ``optimizer=sgd,adam+lr=0.001`` trains Adam at its own learning rate.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..basics.atomic import atomic_open, write_text
from ..basics.errors import SettingsError
from ..data import Dataset
from ..images import ImageCache
from ..runs.fitting import Job, family_of, fit_many, load_for, splits_for
from ..runs.folder import write_history

FIELDS = ("factor", "value", "accuracy", "val_loss", "fit_s", "epochs", "parameters", "mmacs")


def parse_vary(texts: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``["order=act-bn,bn-act"]`` -> ``[("order", ["act-bn", "bn-act"])]``."""
    factors = []
    for text in texts:
        key, sep, values = text.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise SettingsError(
                f"--vary expects key=value1,value2 (e.g. order=act-bn,bn-act), got {text!r}."
            )
        factors.append((key.strip(), [v.strip() for v in values.split(",") if v.strip()]))
    return factors


def _variant_assignments(key: str, value: str) -> list[str]:
    """``lr``, ``"adam+lr=0.001"`` -> ``["lr=adam", "lr=0.001"]``-style assignments."""
    first, *extra = value.split("+")
    return [f"{key}={first}", *extra]


def _size_of(model: Any) -> tuple[int | None, float | None]:
    """(parameters, millions of multiply-adds per photo) of a fitted CNN."""
    network = getattr(model, "module_", None)
    if network is None:
        return None, None
    from ..models.cnn import multiply_adds

    parameters = sum(p.numel() for p in network.parameters())
    return parameters, multiply_adds(network, model.size) / 1e6


def ablate(
    resolve: Callable[[list[str]], dict[str, Any]],
    factors: list[tuple[str, list[str]]],
    dataset: Dataset,
    out: str | Path,
    cache: ImageCache | None = None,
    skip_bad: bool = False,
    progress: bool | None = None,
    backend: str | None = None,
    scheduler: str | None = None,
) -> list[dict[str, Any]]:
    """Train every variant and write ablation.csv, ablation.md, history.csv, curves.png
    (each variant an independent fit, in parallel on ``backend`` if given).

    ``resolve(assignments)`` gives the settings of the base recipe plus ``assignments``.
    """
    if not factors:
        raise SettingsError("Name at least one --vary key=value1,value2.")
    base = resolve([])
    variants = []
    for key, values in factors:
        for value in values:
            settings = resolve(_variant_assignments(key, value))
            if (settings["features"], settings["split"]) != (base["features"], base["split"]):
                raise SettingsError(
                    f"--vary {key}: ablations keep the photos, their size and the split fixed; "
                    "vary model settings (params), or run train twice for another size."
                )
            family_of(settings)  # every variant's settings checked before any training
            variants.append((key, value, settings))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_for(base, dataset, cache, skip_bad, progress)
    split = splits_for(base, photos.dataset)[0]
    test = split[1]
    jobs = [Job(settings, split, number) for number, (_, _, settings) in enumerate(variants)]
    done = fit_many(
        jobs, photos, progress=progress, backend=backend, scheduler=scheduler,
        description="Training variants",
    )  # fmt: skip
    rows, history = [], []
    for (key, value, _), (fold, model) in zip(variants, done, strict=True):
        runs = fold.history
        for r in runs:
            r["member"] = f"{key}={value}" + (f" #{r['member']}" if r["member"] != "" else "")
        history += runs
        parameters, mmacs = _size_of(model)
        rows.append(
            {
                "factor": key,
                "value": value,
                "accuracy": float(np.mean(fold.predicted == photos.labels[test])),
                "val_loss": runs[-1].get("val_loss") if runs else None,
                "fit_s": fold.fit_s,
                "epochs": runs[-1]["epoch"] if runs else None,
                "parameters": parameters,
                "mmacs": mmacs,
            }
        )
    _write(out, rows)
    if history:
        write_history(out, history)
    return rows


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_open(out / "ablation.csv", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "| factor | value | accuracy | final val loss | fit (s) | epochs | parameters | MMACs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [
            r["factor"],
            r["value"],
            f"{r['accuracy']:.3f}",
            "" if r["val_loss"] is None else f"{r['val_loss']:.3f}",
            f"{r['fit_s']:.1f}",
            "" if r["epochs"] is None else str(r["epochs"]),
            "" if r["parameters"] is None else f"{r['parameters']:,}",
            "" if r["mmacs"] is None else f"{r['mmacs']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    write_text(out / "ablation.md", "\n".join(lines) + "\n")
