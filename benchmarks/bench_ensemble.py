"""Issue 36: the ensemble of runs against its members, on the members' own held-out photos.

    python benchmarks/bench_ensemble.py RUN RUN [RUN...] [--out DIR]

RUNs: runs trained on the same photos and folds (RESULTS.md: colour-texture and cnn-fast
on mango-grading, 5 folds by fruit). Makes ``mangograde ensemble`` of them with
``--weights equal`` and ``--weights fit`` (whole commands, timed) and prints, for each
member and each ensemble, the photo and fruit levels: accuracy (with the fruit level's
95% interval), best<->worst grade errors, calibration error (ECE), and the share of fruits
graded at 99% accuracy (the surest ones; the rest left to check by hand).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def _figures(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    fruit = metrics.get("fruit") or {}
    calibration = {}
    if (run / "calibration.json").is_file():
        calibration = json.loads((run / "calibration.json").read_text(encoding="utf-8"))
    accuracy = fruit.get("accuracy") or {}
    return {
        "photos": metrics["accuracy"],
        "photo_ece": calibration.get("ece_after"),
        "fruits": accuracy.get("value"),
        "low": accuracy.get("low"),
        "high": accuracy.get("high"),
        "a_c": fruit.get("extreme_errors"),
        "ece": fruit.get("ece"),
        "at_99": fruit.get("coverage_at_99"),
        "n_fruits": fruit.get("n"),
        "weights": (metrics.get("weights") or {}).get("chosen"),
    }


def _row(name: str, f: dict) -> str:
    def num(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    return (f"| {name} | {num(f['photos'])} | {num(f['photo_ece'])} | **{num(f['fruits'])}** "
            f"({num(f['low'])}-{num(f['high'])}) | {f['a_c']} | {num(f['ece'])} | "
            f"{num(f['at_99'], 2)} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, help="Where to keep the ensembles (default: temp).")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="bench-ensemble-"))
    print(f"machine: {machine()}")
    rows = [_row(run.name, _figures(run)) for run in args.runs]
    for weights in ("equal", "fit"):
        out = work / f"ensemble-{weights}"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "mangograde", "ensemble", *map(str, args.runs),
                               "--out", str(out), "--weights", weights, "--overwrite", "--quiet"],
                              capture_output=True, text=True)  # fmt: skip
        took = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"ensemble --weights {weights} failed:\n{done.stdout}{done.stderr}")
        found = _figures(out)
        shares = ", ".join(f"{w:.2f}" for w in found["weights"] or [])
        rows.append(_row(f"ensemble, weights {weights} ({shares}); made in {took:.1f} s", found))
    print("| run | photos | photo ECE | fruits (95% interval) | A<->C fruits | fruit ECE | "
          "fruits at 99% right |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    print(f"ensembles kept in {work}")


if __name__ == "__main__":
    main()
