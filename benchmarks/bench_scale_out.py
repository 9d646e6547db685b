"""Scale-out paths against the default one, same data, same script.

Usage:
  python benchmarks/bench_scale_out.py torchrun [--epochs 3]
      cnn-fast on mango-grading fold 0 of 5: 1 process with 2 threads, then
      `torchrun --nproc_per_node 2` (1 thread each); training photos/s of each, and how far
      apart their weights end.
  PYTHONPATH=/path/to/ray python benchmarks/bench_scale_out.py ray [--preset svm-study]
      Opt-in (Ray is ~1 GB and not a test dependency): the 5-fold run in this process, then
      with --backend ray (a local Ray started by the run); predictions compared, wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def _data() -> list[str]:
    root = data_dir("mango-grading")
    return [str(root), "--groups", str(root / "fruit_groups.csv")]


def _timed(command: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, **(env or {})}, capture_output=True)
    return time.perf_counter() - start


def _photos_per_s(run: Path) -> tuple[float, float]:
    """Training photos per second (augmentation + steps) and the fit time of a run."""
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    timing = json.loads((run / "timing.json").read_text())
    seconds = sum(float(r["data_s"]) + float(r["step_s"]) for r in rows)
    metrics = json.loads((run / "metrics.json").read_text())
    trained = (metrics["n_images"] - metrics["n_held_out"]) * len(rows)
    return trained / seconds, timing["fit_s"]


def torchrun(epochs: int) -> None:
    from mangograde.models.bundle import load_bundle

    work = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    recipe = [*_data(), "--preset", "cnn-fast", "--cv", "5", "--only-fold", "0",
              "--set", f"epochs={epochs}", "--set", "dropout=0"]  # fmt: skip
    main = [sys.executable, "-m", "mangograde", "train", *recipe]
    one = _timed([*main, "--set", "threads=2", "--out", str(work / "one")])
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mangograde", "train", *recipe, "--set", "threads=1"]  # fmt: skip
    two = _timed([*ddp, "--out", str(work / "two")], {"OMP_NUM_THREADS": "1"})
    (rate_one, fit_one), (rate_two, fit_two) = (
        _photos_per_s(work / "one"),
        _photos_per_s(work / "two"),
    )
    a = load_bundle(work / "one" / "model" / "fold-0").model.module_.state_dict()
    b = load_bundle(work / "two" / "model" / "fold-0").model.module_.state_dict()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    accuracy = [
        json.loads((work / r / "metrics.json").read_text())["accuracy"] for r in ("one", "two")
    ]
    print(f"machine: {machine()}")
    print(f"cnn-fast, fold 0 of 5, {epochs} epochs, dropout 0, batch 16 (global)")
    print(f"1 process x 2 threads : {rate_one:.1f} photos/s in training, fit {fit_one:.1f} s, "
          f"whole command {one:.1f} s, accuracy {accuracy[0]:.3f}")  # fmt: skip
    print(f"2 processes x 1 thread: {rate_two:.1f} photos/s in training, fit {fit_two:.1f} s, "
          f"whole command {two:.1f} s, accuracy {accuracy[1]:.3f}")  # fmt: skip
    print(f"ratio 2-process / 1-process photos/s: {rate_two / rate_one:.2f}")
    print(f"largest weight difference: {worst:.2e}")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def ray(preset: str) -> None:
    import ray as ray_module

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    main = [sys.executable, "-m", "mangograde", "train", *_data(), "--preset", preset, "--cv", "5"]
    plain = _timed([*main, "--out", str(work / "plain")])
    on_ray = _timed([*main, "--backend", "ray", "--out", str(work / "ray")])
    pairs = list(
        zip(_rows(work / "plain" / "predictions.csv"), _rows(work / "ray" / "predictions.csv"),
            strict=True)
    )  # fmt: skip
    regraded = sum(x["predicted"] != y["predicted"] for x, y in pairs)
    drift = max(abs(float(x[k]) - float(y[k])) for x, y in pairs for k in x if k[:2] == "p_")
    accuracy = [
        json.loads((work / r / "metrics.json").read_text())["accuracy"] for r in ("plain", "ray")
    ]
    print(f"machine: {machine()}, Ray {ray_module.__version__}")
    print(f"{preset}, 5 folds: in-process {plain:.1f} s (accuracy {accuracy[0]:.3f}), "
          f"--backend ray {on_ray:.1f} s (accuracy {accuracy[1]:.3f})")  # fmt: skip
    print(f"wall-time ratio ray / in-process: {on_ray / plain:.2f}")
    print(f"photos graded differently: {regraded}; largest probability difference: {drift:.1e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("torchrun", "ray"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--preset", default="svm-study")
    args = parser.parse_args()
    torchrun(args.epochs) if args.what == "torchrun" else ray(args.preset)
