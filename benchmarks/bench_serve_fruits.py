"""Issue 23: `serve` grading whole fruits (loopback only), and where a request's time goes.

    python benchmarks/bench_serve_fruits.py GRADER [--fruits 200] [--per-fruit 10]
        [--clients 16] [--uploads 1000] [--workers 1] [--grading-threads 1] [--fruits-only]

GRADER: a run or an export folder (RESULTS.md: the ONNX export of a cnn-fast run). The
aicup-sample photos stand in for a line's camera. In turn, against one fresh server:

1. photos, one per request, no fruit field (today's use), and the same with a `fruit`
   field (each photo its own fruit): photos/s, alternated twice, and their ratio;
2. fruits of ``--per-fruit`` photos, one fruit per request, ``--clients`` concurrent
   clients: fruits/s, photos/s, latency, errors;

then, in this process on one core's worth of work, what one photo costs at each step:
reading the multipart body, decoding the JPEG at the grader's geometry, and the grader's
forward pass at batch 1 and at the batch a fruit makes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import data_dir, machine  # noqa: E402
from bench_serve import _percentile, _start  # noqa: E402


async def _photos(url: str, photos, uploads: int, clients: int, fruit: bool):
    counter = iter(range(uploads))
    errors = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for number in counter:
            name, data = photos[number % len(photos)]
            extra = {"data": {"fruit": f"f{number}"}} if fruit else {}
            answer = await http.post("/v1/grade", files=[("files", (name, data))], **extra)
            if answer.status_code != 200 or (fruit and len(answer.json()["fruits"]) != 1):
                errors += 1

    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return uploads / (time.perf_counter() - start), errors


async def _fruits(url: str, photos, n_fruits: int, per_fruit: int, clients: int):
    counter = iter(range(n_fruits))
    latencies: list[float] = []
    errors = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for number in counter:
            views = [photos[(number * per_fruit + i) % len(photos)] for i in range(per_fruit)]
            files = [("files", (f"{i}-{name}", data)) for i, (name, data) in enumerate(views)]
            start = time.perf_counter()
            answer = await http.post("/v1/grade", files=files, data={"fruit": f"m{number}"})
            latencies.append(time.perf_counter() - start)
            body = answer.json() if answer.status_code == 200 else {}
            if (
                len(body.get("fruits") or []) != 1
                or body["fruits"][0]["photos"].__len__() != per_fruit
            ):
                errors += 1

    start = time.perf_counter()
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return n_fruits / (time.perf_counter() - start), latencies, errors


def _steps(grader_path: Path, photos, per_fruit: int, fold: int | None = None) -> list[str]:
    """Per-photo cost of each step of a request, measured in this process."""
    import numpy as np
    from python_multipart import MultipartParser  # as Starlette parses

    from mangograde.graders import open_grader
    from mangograde.images.decode import decode

    grader = open_grader(grader_path, fold)
    boundary = "mangogradebench"
    views = photos[:per_fruit]
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{n}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
            + data
            + b"\r\n"
            for n, data in views
        )
        + f"--{boundary}--\r\n".encode()
    )

    def parse() -> None:
        parts = []
        parser = MultipartParser(boundary, {"on_part_data": lambda d, s, e: parts.append(e - s)})
        parser.write(body)
        parser.finalize()

    def timed(work, repeats: int) -> float:
        work()
        start = time.perf_counter()
        for _ in range(repeats):
            work()
        return (time.perf_counter() - start) / repeats

    parse_s = timed(parse, 20) / len(views)
    decode_s = statistics.median(
        timed(lambda d=d, n=n: decode(n, grader.geometry, d), 3) for n, d in photos[:20]
    )
    images = np.stack([decode(n, grader.geometry, d) for n, d in views])
    one_s = timed(lambda: grader.grade(images[:1]), 20)
    batch_s = timed(lambda: grader.grade(images), 10) / len(views)
    total = parse_s + decode_s + batch_s
    return [
        f"multipart parsing: {1e3 * parse_s:.2f} ms a photo ({100 * parse_s / total:.0f}%)",
        f"decoding at {grader.geometry}: {1e3 * decode_s:.1f} ms a photo "
        f"({100 * decode_s / total:.0f}%)",
        f"grading at batch {len(views)}: {1e3 * batch_s:.1f} ms a photo "
        f"({100 * batch_s / total:.0f}%); at batch 1: {1e3 * one_s:.1f} ms",
        f"sum: {1e3 * total:.1f} ms a photo, so at most {1 / total:.0f} photos/s on one core "
        f"({1 / total / per_fruit:.1f} fruits/s of {per_fruit})",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grader", type=Path)
    parser.add_argument("--fruits", type=int, default=200)
    parser.add_argument("--per-fruit", type=int, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=1000)
    parser.add_argument("--steps-only", action="store_true", help="Only the per-step costs.")
    parser.add_argument("--fold", type=int, help="With --steps-only: one fold of a run.")
    parser.add_argument("--workers", type=int, default=1, help="serve's --workers.")
    parser.add_argument("--grading-threads", type=int, default=1, help="serve's --grading-threads.")
    parser.add_argument(
        "--fruits-only",
        action="store_true",
        help="Only the fruits' load (no photo-a-request rounds, no steps).",
    )
    args = parser.parse_args()
    files = sorted((data_dir("aicup-sample") / "sample_image").glob("*.jpg"))
    photos = [(f.name, f.read_bytes()) for f in files]
    print(f"machine: {machine()}; {len(files)} aicup-sample photos, "
          f"{sum(len(d) for _, d in photos) / len(photos) / 1024:.0f} KB on average")  # fmt: skip
    if args.steps_only:
        print("\n".join(_steps(args.grader, photos, args.per_fruit, args.fold)))
        return
    server, url = _start(
        args.grader,
        32,
        "--no-record",
        "--workers",
        str(args.workers),
        "--grading-threads",
        str(args.grading_threads),
    )
    print(f"serve --workers {args.workers} --grading-threads {args.grading_threads}")
    try:
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(0 if args.fruits_only else 2):
            for fruit in (False, True):
                rate, errors = asyncio.run(_photos(url, photos, args.uploads, args.clients, fruit))
                rates[fruit].append(rate)
                print(f"photos, one a request, fruit field {'on' if fruit else 'off'}: "
                      f"{rate:.1f} photos/s, {errors} errors")  # fmt: skip
        if rates[True]:
            ratio = statistics.median(a / b for a, b in zip(rates[True], rates[False], strict=True))
            print(f"with the fruit field / without: {ratio:.3f}")
        rate, latencies, errors = asyncio.run(
            _fruits(url, photos, args.fruits, args.per_fruit, args.clients)
        )
        print(f"fruits of {args.per_fruit} photos, {args.clients} clients: {rate:.2f} fruits/s "
              f"({rate * args.per_fruit:.1f} photos/s); latency p50 "
              f"{_percentile(latencies, 50):.2f} s, p95 {_percentile(latencies, 95):.2f} s; "
              f"{errors} errors")  # fmt: skip
    finally:
        server.terminate()
        server.wait(30)
    if not args.fruits_only:
        print("\n".join(_steps(args.grader, photos, args.per_fruit)))


if __name__ == "__main__":
    main()
