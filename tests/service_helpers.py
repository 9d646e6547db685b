"""A tiny trained run and a real uvicorn server on 127.0.0.1 for the service tests."""

from __future__ import annotations

import io
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from .test_cli import run

TINY_CNN = ["--model", "cnn", "--cv", "2", "--set", "features.size=32", "--set", "epochs=2",
            "--set", "width=8", "--set", "threads=1", "--set", "batch_size=8"]  # fmt: skip
# cnn-fast grades the mean of 4 flips (tta): its ONNX graph holds each network 4 times and
# takes ~2.5x as long to export. Tests of something else that export a CNN run (a head, a
# crop, a rule) train without flips; test_export exports flips and checks them.
NO_FLIPS = ["--set", "tta=false"]


def train_tiny(root: Path, out: Path, *recipe: str) -> Path:
    data = [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]
    result = run("train", *data, *(recipe or TINY_CNN), "--out", out)
    assert result.exit_code == 0, result.output
    return out


def jpeg(seed: int = 0, size: tuple[int, int] = (60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 40 + seed).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (20, 20)).save(buffer, "GIF")
    return buffer.getvalue()


def png_bomb(side: int = 30000) -> bytes:
    """A few hundred bytes that claim ``side`` x ``side`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(app, port: int | None = None):
    """``app`` served by uvicorn in a thread (on ``port``, or a free one); yields its URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def serve_process(run: Path, *options: str, **popen) -> tuple[subprocess.Popen, str]:
    """``mangograde serve RUN OPTIONS...`` in a process of its own on a free port, once it
    says it is ready; the process and its base URL (``popen``: Popen's arguments)."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    server = subprocess.Popen(
        [sys.executable, "-m", "mangograde", "serve", str(run), "--port", str(port), *options],
        env=env, **popen,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("mangograde serve did not get ready in 90 s")
