"""``CNNClassifier``'s checkpoints: each epoch's weights, optimiser and every random
state, so that a killed run resumed from one ends with the same weights as a run never
stopped (same seed, same device and threads); a resumed run must have the same settings
and see the same photos and grades."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..basics.atomic import atomic_path
from ..basics.errors import SettingsError

CHECKPOINT = "checkpoint.pt"

# Settings added after 0.1.0, with the values older bundles were trained with.
ADDED = {"backbone": "lite0", "weights": "imagenet", "bn_momentum": 0.1, "body_lr": 1.0,
         "freeze_epochs": 0, "head": "softmax", "precision": "fp32"}  # fmt: skip


def fingerprint(images: np.ndarray, codes: np.ndarray) -> str:
    """What a checkpoint was trained on: a resumed run must see the same photos and grades."""
    digest = hashlib.sha256(np.ascontiguousarray(images).data)
    digest.update(codes.astype(np.int64).tobytes())
    return digest.hexdigest()


def save_checkpoint(
    path: Path,
    params: dict[str, Any],
    classes: list[Any],
    networks: tuple[torch.nn.Module, torch.nn.Module],
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    run: dict[str, Any],
    fingerprint: str,
) -> None:
    """Write the run so far: ``params`` (what is learned depends on), ``classes``, the
    network and its moving average, the optimiser and the random states."""
    payload = {
        "format": "mangograde-checkpoint",
        "params": json.dumps(params, sort_keys=True, default=str),
        "classes": json.dumps(classes),
        "data": fingerprint,
        "epoch": run["epoch"],
        "history": json.dumps(run["history"]),
        "best_loss": run["best_loss"],
        "stale": run["stale"],
        "best": run["best"],
        "network": networks[0].state_dict(),
        "average": networks[1].state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(path, shared=False) as tmp:  # a kill never leaves half a file
        torch.save(payload, tmp)


def load_checkpoint(
    path: Path,
    params: dict[str, Any],
    classes: list[Any],
    network: torch.nn.Module,
    kept: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: str,
) -> dict[str, Any]:
    """Load the checkpoint at ``path`` into the network, its average (``kept``), the
    optimiser and the random states, and return the run so far; refused when it was
    written with other ``params``, ``classes`` or photos."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise SettingsError(
            f"Cannot resume from {path}: {exc}. Delete it to start this model again."
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != "mangograde-checkpoint":
        raise SettingsError(f"{path} is not a mangograde checkpoint.")
    before = {**ADDED, **json.loads(saved["params"])}  # a checkpoint older than these
    now = json.loads(json.dumps(params, sort_keys=True, default=str))
    changed = [
        f"{k} was {before.get(k)!r}, now {now.get(k)!r}" for k in now if before.get(k) != now[k]
    ]
    if json.loads(saved["classes"]) != classes or saved["data"] != fingerprint:
        changed.append("the photos or their grades differ")
    if changed:
        raise SettingsError(
            f"Cannot resume from {path}: it was written with other settings "
            f"({'; '.join(changed)}). Resume with the same settings, or train into a new "
            "--out."
        )
    network.load_state_dict(saved["network"])
    kept.load_state_dict(saved["average"])
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    generator.set_state(saved["generator"])
    if "cuda_rng" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    return {
        "epoch": saved["epoch"],
        "history": json.loads(saved["history"]),
        "best": saved["best"],
        "best_loss": saved["best_loss"],
        "stale": saved["stale"],
    }
