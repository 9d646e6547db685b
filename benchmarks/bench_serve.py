"""Load on `mangograde serve` (loopback only), against `mangograde predict` on the same photos.

    python benchmarks/bench_serve.py RUN [--uploads 2000] [--clients 16]

    python benchmarks/bench_serve.py RUN --familiar-cost [--uploads 600] [--rounds 2]
    python benchmarks/bench_serve.py RUN --record-cost [--db URL ...] [--uploads 2000]
    python benchmarks/bench_serve.py RUN --correction-cost [--db URL ...] [--uploads 2000]

RUN: a run folder (RESULTS.md uses cnn-fast). The aicup-sample photos are uploaded one per
request, in turn, by 16 concurrent clients: once with micro-batching (--max-batch 32) and
once without (--max-batch 1), each against a fresh server. With --familiar-cost, only
micro-batching on, with --familiar on and off in turn (fresh servers, --rounds each): the
photos/s ratio of the two. With --record-cost: --no-record against recording into a fresh
SQLite file (and each --db URL, e.g. a PostgreSQL database), --rounds each, interleaved;
the photos/s ratio, the p95 latency added, and whether every answer 200 has its row. With
--correction-cost: recording into a fresh SQLite file (and each --db URL), one more client
posts a correction every 20 ms while the 16 grade: each correction's latency (p50, p95,
p99), and whether every one answered 201 is in the records. A truncated JPEG goes up in
the middle of each load run. Then (plain runs) `mangograde predict` grades the same
number of photos (the sample photos linked under distinct names, a fresh cache) in one
command.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _start(run: Path, max_batch: int, *extra: str) -> tuple[subprocess.Popen, str]:
    port = _port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mangograde", "serve", str(run), "--port", str(port),
         "--max-batch", str(max_batch), *(extra or ("--no-record",))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not get ready in 120 s")


async def _load(url: str, photos: list[tuple[str, bytes]], uploads: int, clients: int, pid: int):
    latencies: list[float] = []
    errors = lost = 0
    rss = {"start": _rss_mb(pid)}
    counter = iter(range(uploads))
    bad_answer: list[int] = []

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, lost
        for number in counter:
            if number == uploads // 2:  # a bad upload in the middle of the run
                cut = photos[0][1][:500]
                answer = await http.post("/v1/grade", files=[("files", ("cut.jpg", cut))])
                bad_answer.append(answer.status_code)
            name, data = photos[number % len(photos)]
            start = time.perf_counter()
            try:
                answer = await http.post("/v1/grade", files=[("files", (name, data))])
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            if answer.status_code != 200:
                errors += 1
            elif [r.get("grade") for r in answer.json()["results"]] == [None]:
                lost += 1
            if number == 500:
                rss["after_500"] = _rss_mb(pid)

    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - start
    rss["end"] = _rss_mb(pid)
    return seconds, latencies, errors, lost, rss, bad_answer


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def _predict(run: Path, files: list[Path], count: int) -> float:
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "photos"
        folder.mkdir()
        for i in range(count):
            source = files[i % len(files)]
            os.link(source, folder / f"{i:05d}_{source.name}")
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "mangograde", "predict", str(run), str(folder), "--out",
             str(Path(work) / "p.csv"), "--cache-dir", str(Path(work) / "cache"), "--quiet"],
            check=True, capture_output=True,
        )  # fmt: skip
        return count / (time.perf_counter() - start)


def _familiar_cost(args: argparse.Namespace, photos: list[tuple[str, bytes]]) -> None:
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(args.rounds):
        for familiar in ("off", "on"):
            server, url = _start(args.run, 32, "--familiar", familiar, "--no-record")
            try:
                seconds = asyncio.run(
                    _load(url, photos, args.uploads, args.clients, server.pid))[0]  # fmt: skip
            finally:
                server.terminate()
                server.wait(30)
            rates[familiar].append(args.uploads / seconds)
            print(f"--familiar {familiar}: {rates[familiar][-1]:.1f} photos/s", flush=True)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    print(f"median photos/s, familiarity on / off: {on:.1f} / {off:.1f} = {on / off:.3f}")


def _record_cost(args: argparse.Namespace, photos: list[tuple[str, bytes]]) -> None:
    from mangograde.records import open_store

    work = Path(tempfile.mkdtemp(prefix="bench-records-"))
    targets = {"off": None, "sqlite": f"sqlite:///{work / 'records.db'}"}
    targets |= {f"db{i}": url for i, url in enumerate(args.db)}
    rates: dict[str, list[float]] = {k: [] for k in targets}
    p95: dict[str, list[float]] = {k: [] for k in targets}
    answered = {k: 0 for k in targets}
    for _ in range(args.rounds):
        for name, url in targets.items():
            extra = ("--no-record",) if url is None else ("--db", url)
            server, base = _start(args.run, 32, *extra)
            try:
                seconds, latencies, errors, lost, _, _ = asyncio.run(
                    _load(base, photos, args.uploads, args.clients, server.pid))  # fmt: skip
            finally:
                server.terminate()
                server.wait(30)
            rates[name].append(args.uploads / seconds)
            p95[name].append(_percentile(latencies, 95))
            answered[name] += args.uploads - errors - lost
            print(f"{name}: {rates[name][-1]:.1f} photos/s, p95 {p95[name][-1] * 1000:.1f} ms, "
                  f"errors {errors}", flush=True)  # fmt: skip
    base_rate, base_p95 = statistics.median(rates["off"]), statistics.median(p95["off"])
    for name, url in targets.items():
        if url is None:
            continue
        store = open_store(url)
        kept = sum(store.summary(lot).gradings for lot in store.lot_names())
        rate, added = statistics.median(rates[name]), statistics.median(p95[name]) - base_p95
        print(f"{name}: photos/s {rate:.1f} / {base_rate:.1f} = {rate / base_rate:.3f}; p95 "
              f"added {added * 1000:+.1f} ms; rows {kept} for {answered[name]} graded answers "
              f"({answered[name] - kept} lost)")  # fmt: skip


def _corrector(url: str, ids: list[int], grades: list[str], stop, found) -> None:
    """In a process of its own (the load's clients do not delay its clock): one correction
    every 20 ms until ``stop`` is set; its latencies go to ``found``."""
    latencies, number = [], 0
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            grade = {"grade": grades[number % len(grades)], "operator": "bench"}
            start = time.perf_counter()
            answer = http.post(f"/v1/gradings/{ids[number % len(ids)]}/corrections", json=grade)
            if answer.status_code != 201:
                raise SystemExit(f"a correction was answered {answer.status_code}: {answer.text}")
            latencies.append(time.perf_counter() - start)
            number += 1
            time.sleep(0.02)
    found.put(latencies)


def _corrections(url: str, photos: list[tuple[str, bytes]], load_args) -> tuple[list, list]:
    """Corrections alone (the baseline), then while ``_load(*load_args)`` runs."""
    import multiprocessing

    first = httpx.post(f"{url}/v1/grade", files=[("files", p) for p in photos[:20]],
                       data={"lot": "corrections"}, timeout=60).json()  # fmt: skip
    ids = [r["grading_id"] for r in first["results"]]
    grades = list(first["results"][0]["probabilities"])
    context = multiprocessing.get_context("spawn")
    runs = []
    for loaded in (False, True):
        stop, found = context.Event(), context.Queue()
        worker = context.Process(target=_corrector, args=(url, ids, grades, stop, found))
        worker.start()
        if loaded:  # the line's clients are other machines: here they yield to the server
            os.nice(10)
            asyncio.run(_load(*load_args))
        else:
            time.sleep(3)
        stop.set()
        runs.append(found.get(timeout=60))
        worker.join(30)
    return runs[0], runs[1]


def _correction_cost(args: argparse.Namespace, photos: list[tuple[str, bytes]]) -> None:
    from mangograde.records import history, open_store

    work = Path(tempfile.mkdtemp(prefix="bench-corrections-"))
    targets = {"sqlite": f"sqlite:///{work / 'records.db'}"}
    targets |= {f"db{i}": url for i, url in enumerate(args.db)}
    for name, url in targets.items():
        server, base = _start(args.run, 32, "--db", url)
        try:
            load = (base, photos, args.uploads, args.clients, server.pid)
            idle, latencies = _corrections(base, photos, load)
        finally:
            server.terminate()
            server.wait(30)
        store = open_store(url)
        rows = store.gradings("corrections")
        kept = sum(len(history(store, r["id"])) for r in rows)
        sent = len(idle) + len(latencies)
        print(f"{name}, no load: {len(idle)} corrections, p50 {_percentile(idle, 50) * 1000:.1f} "
              f"ms, p95 {_percentile(idle, 95) * 1000:.1f} ms")  # fmt: skip
        print(f"{name}: {len(latencies)} corrections while {args.clients} clients graded "
              f"{args.uploads} photos; latency p50 {_percentile(latencies, 50) * 1000:.1f} ms, p95 "
              f"{_percentile(latencies, 95) * 1000:.1f} ms, p99 "
              f"{_percentile(latencies, 99) * 1000:.1f} ms; kept {kept} of {sent}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--familiar-cost", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--record-cost", action="store_true")
    parser.add_argument("--db", action="append", default=[])
    parser.add_argument("--correction-cost", action="store_true")
    args = parser.parse_args()
    files = sorted((data_dir("aicup-sample") / "sample_image").glob("*.jpg"))
    photos = [(f.name, f.read_bytes()) for f in files]
    print(f"machine: {machine()}; {len(files)} aicup-sample photos, "
          f"{sum(len(d) for _, d in photos) / len(photos) / 1024:.0f} KB on average")  # fmt: skip
    if args.familiar_cost:
        _familiar_cost(args, photos)
        return
    if args.record_cost:
        _record_cost(args, photos)
        return
    if args.correction_cost:
        _correction_cost(args, photos)
        return
    results = {}
    for label, max_batch in (("micro-batching on (32)", 32), ("micro-batching off (1)", 1)):
        server, url = _start(args.run, max_batch)
        try:
            measured = asyncio.run(_load(url, photos, args.uploads, args.clients, server.pid))
        finally:
            server.terminate()
            server.wait(30)
        seconds, latencies, errors, lost, rss, bad = measured
        rate = args.uploads / seconds
        results[label] = rate
        growth = (rss["end"] - rss["after_500"]) / rss["after_500"]
        print(f"{label}: {rate:.1f} photos/s; latency p50 {_percentile(latencies, 50):.3f} s, "
              f"p95 {_percentile(latencies, 95):.3f} s, p99 {_percentile(latencies, 99):.3f} s; "
              f"errors {errors}, lost {lost}; bad upload answered {bad}; RSS start "
              f"{rss['start']:.0f} MB, after 500 {rss['after_500']:.0f} MB, end {rss['end']:.0f} "
              f"MB ({growth:+.1%} from request 500 to the end)")  # fmt: skip
    predict_rate = _predict(args.run, files, args.uploads)
    print(f"mangograde predict, {args.uploads} photos: {predict_rate:.1f} photos/s (whole command)")
    best = results["micro-batching on (32)"]
    print(f"serve (micro-batching on) / predict: {best / predict_rate:.2f}")


if __name__ == "__main__":
    main()
