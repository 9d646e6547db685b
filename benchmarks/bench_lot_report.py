"""Issue 38: how long the lot certificate takes for a closed lot of 10,000 gradings.

    python benchmarks/bench_lot_report.py [--gradings 10000] [--repeats 3]

A temporary SQLite database gets one lot of N gradings through the store API (batches of
32 photos, 4 photos to a fruit, 10% to check, 5% corrected by two operators, 60 of the
photos to check kept as 700 x 425 JPEGs named by SHA-256, as ``serve --keep-photos`` keeps
them), closed where the records know closings. Then, as whole commands (process start and
imports included), the median of ``--repeats``: ``lots report LOT --out lot.html --photos
KEPT`` (target < 2 s), ``--out lot.csv`` (< 2 s) and ``lots verify LOT --digest HEX
--certificate lot.csv`` (< 1 s); and ``lots show LOT``, the floor every lots command pays
(process start, imports, the schema check, the lot's summary).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

LOT = "big lot"


def _jpeg(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (425, 700, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def fill(url: str, n: int, kept: Path) -> None:
    from mangograde import records
    from mangograde.records import FruitRecord, ModelIdentity, PhotoRecord, correct, open_store

    store = open_store(url)
    model = ModelIdentity("cnn-fast", "ab" * 32)
    grades = ("Extra_Class", "Class_I", "Class_II")
    start = datetime(2026, 12, 7, 6, tzinfo=timezone.utc)
    ids = []
    for first in range(0, n, 32):
        photos, fruits = [], []
        for i in range(first, min(n, first + 32)):
            fruit, grade = f"fruit-{i // 4}", grades[i % 3]
            sha = hashlib.sha256(str(i).encode()).hexdigest()
            if i % 10 == 0 and i // 10 < 60:
                data = _jpeg(i)
                sha = hashlib.sha256(data).hexdigest()
                (kept / f"{sha}.jpg").write_bytes(data)
            photos.append(PhotoRecord(
                f"photo-{i:06d}.jpg", sha, 120_000, grade,
                {g: round(0.8 if g == grade else 0.1, 6) for g in grades},
                check=i % 10 == 0, reason="unsure" if i % 10 == 0 else None,
                familiarity=10.0 + i % 7, latency_ms=12.5, fruit=fruit))  # fmt: skip
            if i % 4 == 0:
                fruits.append(FruitRecord(fruit, grade, {g: 0.33 for g in grades}))
        when = start + timedelta(seconds=first)
        ids += store.record(LOT, model, photos, fruits, when=when)
    for k, grading in enumerate(ids[5::20]):
        correct(store, grading, "Class_I", ("ana", "bo")[k % 2])
    close_lot = getattr(records, "close_lot", None)
    if close_lot is not None:
        close_lot(store, LOT, "carmen")


def timed(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mangograde", *args], capture_output=True,
                          text=True)  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode not in (0, 3):
        sys.exit(f"mangograde {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return took, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gradings", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-lot-report-"))
    kept = work / "kept"
    kept.mkdir()
    url = f"sqlite:///{work / 'records.db'}"
    print(f"machine: {machine()}")
    started = time.perf_counter()
    fill(url, args.gradings, kept)
    print(f"{args.gradings} gradings recorded in {time.perf_counter() - started:.1f} s")
    # the floor every lots command pays (start, imports, the schema check, the summary)
    figures: dict[str, list[float]] = {"html": [], "csv": [], "verify": [], "show": []}
    digest = ""
    for k in range(args.repeats):
        base = ["lots", "report", LOT, "--db", url, "--timezone", "Europe/Madrid", "--out"]
        took, said = timed(*base, str(work / f"lot{k}.html"), "--photos", str(kept))
        figures["html"].append(took)
        took, said = timed(*base, str(work / f"lot{k}.csv"))
        figures["csv"].append(took)
        digest = re.search(r"records: ([0-9a-f]{64})", said).group(1)  # type: ignore[union-attr]
        took, said = timed("lots", "verify", LOT, "--digest", digest, "--db", url,
                           "--certificate", str(work / f"lot{k}.csv"))  # fmt: skip
        assert "matches" in said, said
        figures["verify"].append(took)
        figures["show"].append(timed("lots", "show", LOT, "--db", url)[0])
    startup, _ = timed("--version")
    size = (work / "lot0.html").stat().st_size / 1e6
    for name, times in figures.items():
        print(f"{name}: median {statistics.median(times):.2f} s of {args.repeats} "
              f"({', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
    print(f"mangograde --version alone: {startup:.2f} s; lot.html {size:.1f} MB; digest {digest}")


if __name__ == "__main__":
    main()
