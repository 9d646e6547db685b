"""Issue 25: how long ``mangograde lots report`` takes for a lot of 10,000 gradings, and
what recording one request's grading adds to it.

    python benchmarks/bench_records.py [--db URL ...] [--gradings 10000] [--latency 2000]

Each database (a fresh SQLite file, and each --db URL, e.g. a PostgreSQL database) gets a
lot of N gradings (batches of 32 photos, 8 photos of 4 to a fruit, 5% with a correction),
then ``lots report LOT --out lot.html`` and ``--out lot.csv`` are timed as whole commands.
Then ``--latency`` single-photo transactions, as ``serve`` writes one a request: the time
each takes (p50, p95, p99), which is what recording adds to a request's answer.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402


def fill(url: str, n: int) -> None:
    from sqlalchemy.orm import Session

    from mangograde.records import FruitRecord, ModelIdentity, PhotoRecord, open_store
    from mangograde.records.schema import Correction

    store = open_store(url)
    model = ModelIdentity("cnn-fast", "ab" * 32)
    grades = ("Extra_Class", "Class_I", "Class_II")
    ids = []
    for start in range(0, n, 32):
        photos, fruits = [], []
        for i in range(start, min(n, start + 32)):
            fruit = f"fruit-{i // 4}"
            grade = grades[i % 3]
            photos.append(PhotoRecord(
                f"photo-{i:06d}.jpg", hashlib.sha256(str(i).encode()).hexdigest(), 120_000,
                grade, {g: round(0.8 if g == grade else 0.1, 6) for g in grades},
                check=i % 10 == 0, reason="unsure" if i % 10 == 0 else None,
                familiarity=10.0 + i % 7, latency_ms=12.5, fruit=fruit))  # fmt: skip
            if i % 4 == 0:
                fruits.append(FruitRecord(fruit, grade, {g: 0.33 for g in grades}))
        ids += store.record("big lot", model, photos, fruits)
    with Session(store.engine) as session, session.begin():
        now = datetime.now(timezone.utc)
        session.add_all(Correction(grading_id=g, operator="ana", grade="Class_I", time=now)
                        for g in ids[::20])  # fmt: skip


def latency(url: str, n: int) -> list[float]:
    from mangograde.records import ModelIdentity, PhotoRecord, open_store

    store = open_store(url)
    model = ModelIdentity("cnn-fast", "ab" * 32)
    found = []
    for i in range(n):
        photo = PhotoRecord(f"one-{i}.jpg", hashlib.sha256(str(i).encode()).hexdigest(), 1000,
                            "Class_I", {"Class_I": 1.0}, latency_ms=1.0)  # fmt: skip
        started = time.perf_counter()
        store.record("line", model, [photo])
        found.append(1000 * (time.perf_counter() - started))
    return found


def timed(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mangograde", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", default=[])
    parser.add_argument("--gradings", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=2000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-records-"))
    print(f"machine: {machine()}")
    for number, url in enumerate([f"sqlite:///{work / 'records.db'}", *args.db]):
        report = ["lots", "report", "big lot", "--db", url, "--out"]
        started = time.perf_counter()
        fill(url, args.gradings)
        filled = time.perf_counter() - started
        html = timed(*report, str(work / f"lot{number}.html"))
        table = timed(*report, str(work / f"lot{number}.csv"))
        startup = timed("--version")
        print(f"{url.split(':')[0]}: {args.gradings} gradings recorded in {filled:.1f} s "
              f"(batches of 32); lots report .html {html:.2f} s, .csv {table:.2f} s (whole "
              f"commands; `mangograde --version` alone {startup:.2f} s)", flush=True)  # fmt: skip
        if args.latency:
            import numpy as np

            ms = np.array(latency(url, args.latency))
            print(f"{url.split(':')[0]}: one request's transaction, {args.latency} in turn: p50 "
                  f"{np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, p99 "
                  f"{np.percentile(ms, 99):.2f} ms", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
