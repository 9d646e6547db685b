"""Issue points 4 and 5: a run adapted to another orchard counts that orchard's photos as
familiar, and adapt keeps the parent only where it helps, in little time.

    python benchmarks/bench_adapt_keep.py RUN --out DIR [--baseline-rev REV]
        [--baseline-blas-threads N] [--skip-baseline]

RUN: a colour-texture run trained on mango-grading (5 folds). Times, as whole commands,
``mangograde adapt RUN aicup-sample --labels Sample_Label.csv --cv 5`` with the default
keep rule (best) and with ``--keep adapted``, and the same command of the code at
``--baseline-rev`` (``git archive`` of ``src/``, imported through PYTHONPATH; with
``--baseline-blas-threads`` its BLAS threads set by OPENBLAS_NUM_THREADS). Then reads each
written run's measurement (parent, adapted and scratch on the held-out parts, the run
kept and by how much, the held-out new photos the adapted familiarity flags beside the
parent) and grades foreign-sample (lemons and the empty tray: never trained on) with the
parent, the adapted run and the kept run, counting the photos flagged unfamiliar.
Outputs go under DIR (never into RUN).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def adapt(run: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> float:
    """``mangograde adapt`` on aicup-sample's 94 labelled photos, as a whole command."""
    aicup = data_dir("aicup-sample")
    command = [sys.executable, "-m", "mangograde", "adapt", str(run), str(aicup / "sample_image"),
               "--labels", str(aicup / "Sample_Label.csv"), "--cv", "5", "--out", str(out),
               "--quiet", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - started
    print(done.stdout.strip(), flush=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return took


def baseline_source(rev: str, into: Path) -> Path:
    """``src/`` of ``rev``, unpacked into ``into`` (git archive: the worktree is untouched)."""
    archive = into / "src.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def foreign_flagged(run: Path) -> dict[str, float] | None:
    """The share of foreign-sample's photos the run flags unfamiliar, in all and by folder
    (lemons, lemons with defects, the empty tray); None without a familiarity model."""
    from mangograde.data import find_photos
    from mangograde.graders import grade_batch
    from mangograde.images import ImageCache, load_images
    from mangograde.runs import open_predictor

    predictor = open_predictor(run)
    root = data_dir("foreign-sample")
    paths, _, _ = find_photos([root])
    images = load_images(list(paths), predictor.geometry, ImageCache(), False, None, False).arrays
    flags = grade_batch(predictor, images).unfamiliar
    if flags is None:
        return None
    kinds = np.array([Path(p).relative_to(root).parts[0] for p in paths])
    return {"all": float(np.mean(flags))} | {
        str(k): float(np.mean(flags[kinds == k])) for k in np.unique(kinds)
    }


def measured(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    arms = metrics["adapt"]
    return {
        "parent": arms["parent"],
        "adapted": arms["adapted"],
        "scratch": arms["scratch"],
        "keep": arms.get("keep"),
        "familiar": arms.get("familiar"),
        "run_familiar": metrics.get("familiar"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--baseline-rev", default=None)
    parser.add_argument("--baseline-blas-threads", default=None)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    found: dict = {"machine": machine(), "run": str(args.run)}
    print(found["machine"], flush=True)

    found["best_s"] = adapt(args.run, args.out / "best")
    found["best"] = measured(args.out / "best")
    print(f"adapt --cv 5 (--keep best): {found['best_s']:.1f} s", flush=True)
    found["adapted_s"] = adapt(args.run, args.out / "adapted", "--keep", "adapted")
    found["adapted"] = measured(args.out / "adapted")
    print(f"adapt --cv 5 --keep adapted: {found['adapted_s']:.1f} s", flush=True)
    found["foreign_flagged"] = {
        "parent": foreign_flagged(args.run),
        "adapted": foreign_flagged(args.out / "adapted"),
        "kept": foreign_flagged(args.out / "best"),
    }
    print(f"foreign-sample flagged unfamiliar: {found['foreign_flagged']}", flush=True)

    if args.baseline_rev and not args.skip_baseline:
        work = Path(tempfile.mkdtemp(prefix="adapt-baseline-", dir=args.out))
        env = {**os.environ, "PYTHONPATH": str(baseline_source(args.baseline_rev, work))}
        if args.baseline_blas_threads:
            env["OPENBLAS_NUM_THREADS"] = str(args.baseline_blas_threads)
        found["baseline_rev"] = args.baseline_rev
        found["baseline_s"] = adapt(args.run, args.out / "baseline", env=env)
        print(f"baseline {args.baseline_rev} adapt --cv 5: {found['baseline_s']:.1f} s "
              f"({found['baseline_s'] / found['best_s']:.1f}x the time)", flush=True)  # fmt: skip
    (args.out / "bench_adapt_keep.json").write_text(json.dumps(found, indent=2))
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
