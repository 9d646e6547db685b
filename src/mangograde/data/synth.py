"""Procedural photos of mango-like fruit, for demos and tests.

Each fruit is drawn on a cluttered background (crate slats, other fruit, sometimes a
hand), roughly centred, at a random size, rotation and lighting. Grades follow the
competition's rule:

* A: even colour, no blemish;
* B: uneven colour (a green-yellow flush) or one small blemish;
* C: black spots, anthracnose-like dark patches, or a soft rotten end.

A few percent are borderline (a faint blemish, a couple of spots), so a pixel model
can learn the task but cannot be perfect. Each fruit is photographed one to three times,
as in real grading sets; ``groups.csv`` says which photos show the same fruit.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..basics.atomic import atomic_open, write_text
from ..basics.errors import MangogradeError, OutputError
from ..basics.progress import track
from .splits import holdout

GRADES = ("A", "B", "C")
GRADE_SHARE = (0.3, 0.35, 0.35)
SHOTS_PER_FRUIT = ((1, 2, 3), (0.5, 0.3, 0.2))
BORDERLINE_RATE = 0.05
SYNTHETIC_MARKER = "SYNTHETIC.txt"  # lets reports tell drawn photos from the competition's
PARALLEL_FROM = 200  # photos; below this a process pool costs more than it saves
CRATE_COLOURS = np.array(
    [[40, 90, 170], [30, 120, 60], [170, 45, 40], [205, 170, 60], [95, 95, 100], [60, 60, 62]],
    dtype=np.float32,
)
SKIN_TONES = np.array([[224, 172, 125], [198, 134, 96], [141, 85, 56]], dtype=np.float32)
SKIN_COLOURS = {"blemish": (120, 78, 40), "spot": (28, 20, 16), "patch": (55, 35, 25)}
FLUSH = np.array([150, 160, 55], dtype=np.float32)


@dataclass
class Patch:
    """A mark on the skin, in fruit coordinates (the fruit spans -1..1 on both axes)."""

    u: float
    v: float
    radius: float
    colour: tuple[int, int, int]
    strength: float
    softness: float


@dataclass
class Fruit:
    grade: int
    half_length: float  # fraction of the photo size
    aspect: float
    bulge: float
    deep: np.ndarray  # the darker red of the skin
    bright: np.ndarray  # the orange side
    patches: list[Patch] = field(default_factory=list)


def _patches(rng: np.random.Generator, kind: str, count: int, r_range, strength) -> list[Patch]:
    out = []
    for _ in range(count):
        angle, dist = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.7))
        out.append(
            Patch(
                u=dist * np.cos(angle),
                v=dist * np.sin(angle),
                radius=rng.uniform(*r_range),
                colour=SKIN_COLOURS[kind],
                strength=rng.uniform(*strength),
                softness=rng.uniform(0.15, 0.35),
            )
        )
    return out


def make_fruit(rng: np.random.Generator, grade: int) -> Fruit:
    """Draw one fruit's shape, colours and marks for ``grade`` (0 = A)."""
    fruit = Fruit(
        grade=grade,
        half_length=rng.uniform(0.36, 0.44),
        aspect=rng.uniform(0.62, 0.8),
        bulge=rng.uniform(-0.2, 0.2),
        deep=rng.uniform([120, 20, 40], [170, 45, 70]).astype(np.float32),
        bright=rng.uniform([195, 70, 35], [230, 110, 60]).astype(np.float32),
    )
    borderline = rng.random() < BORDERLINE_RATE
    if grade == 1:
        if rng.random() < 0.65:
            # Uneven colour: a broad green-yellow flush over part of the fruit.
            flush = _patches(
                rng, "blemish", 1, (0.45, 0.75), (0.35, 0.7) if not borderline else (0.12, 0.2)
            )[0]
            flush.colour, flush.softness = tuple(FLUSH.astype(int)), 0.9
            fruit.patches.append(flush)
        else:
            fruit.patches += _patches(
                rng, "blemish", 1, (0.1, 0.16), (0.75, 0.95) if not borderline else (0.2, 0.35)
            )
    elif grade == 2:
        kind = rng.choice(["spots", "anthracnose", "rot"])
        if kind == "spots":
            n = int(rng.integers(2, 4)) if borderline else int(rng.integers(15, 35))
            fruit.patches += _patches(rng, "spot", n, (0.03, 0.07), (0.8, 1.0))
        elif kind == "anthracnose":
            fruit.patches += _patches(
                rng, "patch", int(rng.integers(2, 5)), (0.12, 0.25), (0.75, 0.95)
            )
            fruit.patches += _patches(
                rng, "spot", int(rng.integers(3, 9)), (0.02, 0.05), (0.8, 1.0)
            )
        else:
            end = rng.choice([-1.0, 1.0])
            fruit.patches.append(
                Patch(
                    end * 0.7,
                    rng.uniform(-0.3, 0.3),
                    rng.uniform(0.35, 0.55),
                    SKIN_COLOURS["patch"],
                    rng.uniform(0.75, 0.95),
                    0.6,
                )
            )
    elif borderline:
        fruit.patches += _patches(rng, "blemish", 1, (0.05, 0.08), (0.15, 0.3))
    return fruit


def _ellipse(x, y, cx, cy, a, b, angle):
    """Fruit coordinates (u, v) of pixel grids x, y for an ellipse centred at cx, cy."""
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = x - cx, y - cy
    return (dx * cos + dy * sin) / a, (-dx * sin + dy * cos) / b


def _background(rng: np.random.Generator, size: int, x, y) -> np.ndarray:
    crate = CRATE_COLOURS[rng.integers(len(CRATE_COLOURS))] * rng.uniform(0.7, 1.1)
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = crate
    # Crate slats: dark gaps between bars, in one direction, at a random period and phase.
    period = size * rng.uniform(0.12, 0.22)
    coord = x if rng.random() < 0.5 else y
    gaps = ((coord + rng.uniform(0, period)) % period) < period * rng.uniform(0.2, 0.4)
    img[gaps] *= rng.uniform(0.25, 0.5)
    # Other fruit at the edges of the crate.
    for _ in range(int(rng.integers(0, 3))):
        angle = rng.uniform(0, 2 * np.pi)
        cx, cy = size * (0.5 + 0.62 * np.cos(angle)), size * (0.5 + 0.62 * np.sin(angle))
        u, v = _ellipse(x, y, cx, cy, size * 0.3, size * 0.2, rng.uniform(0, np.pi))
        inside = u**2 + v**2 < 1
        img[inside] = (
            rng.uniform([120, 40, 30], [220, 150, 70]) * (1.1 - 0.4 * (u**2 + v**2))[inside, None]
        )
    if rng.random() < 0.35:  # a hand reaching in from one edge
        skin = SKIN_TONES[rng.integers(len(SKIN_TONES))]
        side = rng.uniform(0, 2 * np.pi)
        base_x, base_y = size * (0.5 + 0.55 * np.cos(side)), size * (0.5 + 0.55 * np.sin(side))
        for finger in range(4):
            spread = side + np.pi + (finger - 1.5) * 0.25
            fx = base_x + 0.18 * size * np.cos(spread)
            fy = base_y + 0.18 * size * np.sin(spread)
            u, v = _ellipse(x, y, fx, fy, size * 0.16, size * 0.04, spread)
            img[u**2 + v**2 < 1] = skin
        u, v = _ellipse(x, y, base_x, base_y, size * 0.17, size * 0.13, side)
        img[u**2 + v**2 < 1] = skin
    return img


def render(fruit: Fruit, rng: np.random.Generator, size: int) -> np.ndarray:
    """One photo of ``fruit``: new pose, background and lighting each time."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    img = _background(rng, size, x, y)
    a = fruit.half_length * size * rng.uniform(0.92, 1.08)
    b = a * fruit.aspect
    cx, cy = size * (0.5 + rng.normal(0, 0.05, size=2))
    u, v = _ellipse(x, y, cx, cy, a, b, rng.uniform(0, 2 * np.pi))
    v = v / (1.0 + fruit.bulge * u)  # one shoulder fuller than the other, like a mango
    r2 = u**2 + v**2
    body = r2 < 1.1  # the skin is computed only where the fruit is
    u, v, r2 = u[body], v[body], r2[body]
    # Skin: deep red on one side shading to orange on the other.
    mix = np.clip(0.5 + 0.35 * u + 0.15 * v, 0, 1)[:, None]
    skin = fruit.deep * (1 - mix) + fruit.bright * mix
    for p in fruit.patches:
        d = np.sqrt((u - p.u) ** 2 + (v - p.v) ** 2) / p.radius
        logit = np.clip((d - 1.0) * (4.0 / max(p.softness, 1e-3)), -30, 30)
        w = (p.strength / (1.0 + np.exp(logit)))[:, None]
        skin = skin * (1 - w) + np.asarray(p.colour, np.float32) * w
    # Lighting: a rounded body with a soft highlight.
    shade = 0.55 + 0.45 * np.sqrt(np.clip(1 - r2, 0, 1))
    hx, hy = rng.uniform(-0.5, 0.1, size=2)
    highlight = 70 * np.exp(-((u - hx) ** 2 + (v - hy) ** 2) / 0.05)
    skin = skin * shade[:, None] + highlight[:, None]
    edge = np.clip((1 - np.sqrt(r2)) * a / 1.5, 0, 1)[:, None]  # ~1.5 px antialiased rim
    img[body] = img[body] * (1 - edge) + skin * edge
    img *= rng.uniform(0.85, 1.12) * rng.uniform(0.95, 1.05, size=3)  # exposure, white balance
    img += 4 * rng.standard_normal(size=img.shape, dtype=np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _rows_csv(path: Path, header: tuple[str, str], rows: list[tuple[str, str]]) -> None:
    with atomic_open(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _draw(job: tuple[Fruit, int, int, int, Path]) -> None:
    fruit, seed, index, size, path = job
    # Each photo has its own generator, so the result does not depend on the worker count.
    pixels = render(fruit, np.random.default_rng([seed, index]), size)
    Image.fromarray(pixels).save(path, quality=90)


def synthesize(
    out: str | Path,
    n: int = 300,
    size: int = 256,
    seed: int = 0,
    dev_fraction: float = 0.2,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``n`` photos in the competition layout and return ``out``.

    Layout: ``train/`` and ``dev/`` photo folders, ``train.csv`` and ``dev.csv``
    (``image_id,label``), and ``groups.csv`` (``image_id,group``). The same seed gives
    the same photos. Into a folder that already holds any of these, only with
    ``overwrite``, and only over photos that ``synthesize`` drew there before.
    """
    if n < 12:
        raise MangogradeError(f"--n {n} is too few: at least 12 photos are needed.")
    if size < 32:
        raise MangogradeError(f"--size {size} is too small: at least 32 pixels.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MangogradeError(f"{out} is a file; give a folder to write the photos into.")
    _clear_earlier_drawing(out, overwrite)
    master = np.random.default_rng(seed)
    shots: list[tuple[int, int]] = []  # (fruit, grade) per photo
    fruits: list[Fruit] = []
    while len(shots) < n:
        grade = int(master.choice(3, p=GRADE_SHARE))
        fruits.append(make_fruit(master, grade))
        count = int(master.choice(SHOTS_PER_FRUIT[0], p=SHOTS_PER_FRUIT[1]))
        shots += [(len(fruits) - 1, grade)] * min(count, n - len(shots))
    labels = np.array([g for _, g in shots])
    groups = [f"fruit{f:05d}" for f, _ in shots]
    _, dev = holdout(labels, dev_fraction, groups, seed)
    in_dev = np.zeros(n, dtype=bool)
    in_dev[dev] = True
    try:
        for part in ("train", "dev"):
            (out / part).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MangogradeError(f"Cannot create {out / part}: {exc.strerror or exc}.") from exc
    rows: dict[str, list[tuple[str, str]]] = {"train": [], "dev": []}
    group_rows = []
    jobs = []
    for i, (fruit_index, grade) in enumerate(shots):
        part = "dev" if in_dev[i] else "train"
        name = f"mango_{i:05d}.jpg"
        jobs.append((fruits[fruit_index], seed, i, size, out / part / name))
        rows[part].append((name, GRADES[grade]))
        group_rows.append((f"{part}/{name}", groups[i]))
    workers = min(os.cpu_count() or 1, 8) if n >= PARALLEL_FROM else 1
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        done = pool.map(_draw, jobs, chunksize=16) if pool else map(_draw, jobs)
        for _ in track(done, n, "Drawing mangoes", progress):
            pass
    for part, part_rows in rows.items():
        _rows_csv(out / f"{part}.csv", ("image_id", "label"), part_rows)
    _rows_csv(out / "groups.csv", ("image_id", "group"), group_rows)
    drawn = [out / part / name for part, part_rows in rows.items() for name, _ in part_rows]
    drawn += [out / f"{part}.csv" for part in rows] + [out / "groups.csv"]
    listing_ = "".join(f"{_sha256(f)}  {f.relative_to(out).as_posix()}\n" for f in drawn)
    write_text(
        out / SYNTHETIC_MARKER,
        f"Drawn by mangograde synth (n={n}, size={size}, seed={seed}): not real photos.\n"
        f"What it drew (SHA-256, file), all that --overwrite may replace:\n{listing_}",
    )
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _drawn(out: Path) -> dict[str, str]:
    """The files the marker in ``out`` says synth drew, and their SHA-256."""
    listed = {}
    for line in (out / SYNTHETIC_MARKER).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) == 64 and name:
            listed[name] = digest
    return listed


OUTPUTS = ("train", "dev", "train.csv", "dev.csv", "groups.csv", SYNTHETIC_MARKER)


def _clear_earlier_drawing(out: Path, overwrite: bool) -> None:
    """Refuse to write over files in ``out``; with ``overwrite``, remove an earlier drawing."""
    present = [name for name in OUTPUTS if (out / name).exists()]
    if not present:
        return
    if not overwrite:
        raise OutputError(
            f"{out} already holds {', '.join(present)}. Choose another folder, or pass "
            "--overwrite to replace photos drawn there before."
        )
    if not (out / SYNTHETIC_MARKER).is_file():
        raise OutputError(
            f"{out} holds {', '.join(present)} but no {SYNTHETIC_MARKER}: these were not drawn "
            "by mangograde synth, so they are not replaced. Choose another folder."
        )
    drawn = _drawn(out)
    files = [f for name in OUTPUTS[:-1] for f in _files_in(out / name)]
    foreign = [
        f.relative_to(out).as_posix()
        for f in files
        if drawn.get(f.relative_to(out).as_posix()) != _sha256(f)
    ]
    if foreign or not drawn:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" * (len(foreign) > 5))
        why = shown or f"its {SYNTHETIC_MARKER} lists nothing"
        raise OutputError(
            f"{out} holds files synth did not draw, or that changed since ({why}): nothing "
            "is replaced. Choose another folder."
        )
    for f in files:
        f.unlink()
    for name in ("train", "dev"):
        with contextlib.suppress(OSError):  # left in place if anything else is inside
            (out / name).rmdir()
    (out / SYNTHETIC_MARKER).unlink()


def _files_in(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if not p.is_dir())
    return [path] if path.exists() else []


def is_synthetic(folder: str | Path) -> bool:
    """True for photos drawn by :func:`synthesize` (its marker is in the folder or above)."""
    folder = Path(folder).resolve()
    return any((f / SYNTHETIC_MARKER).is_file() for f in (folder, folder.parent))
