"""Hostile inputs to ``mangograde serve`` (issue 39): a key speaking for another operator,
links planted in the kept-photos folder, a full disk, ids and numbers JSON or SQL cannot
hold, a master killed with -9, a foreign metrics folder, and 404s that gave away the
database's address and the other lots' names (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")

from fastapi.testclient import TestClient  # noqa: E402

from mangograde.records import history, open_store  # noqa: E402
from mangograde.service import ServeOptions, create_app  # noqa: E402

from .service_helpers import free_port  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402


def _photo(root: Path, name: str = "mango_00000.jpg") -> bytes:
    return (root / "train" / name).read_bytes()


def _grade(client, data: bytes, headers=None, lot: str | None = None, name: str = "m.jpg"):
    form = {"lot": lot} if lot is not None else None
    return client.post("/v1/grade", files=[("files", (name, data, "image/jpeg"))], data=form,
                       headers=headers or {})  # fmt: skip


# -- 2: a named key is its operator ----------------------------------------------------


def test_a_named_key_corrects_as_its_own_operator_and_never_as_another(colour_run, db_url):
    root, colour = colour_run
    keys = {"ana": "key-of-ana", "ben": "key-of-ben", "api-key": "shared-key"}
    ana, shared = {"X-API-Key": "key-of-ana"}, {"X-API-Key": "shared-key"}
    with TestClient(create_app(ServeOptions(run=colour, db=db_url, api_keys=keys))) as client:
        (graded,) = _grade(client, _photo(root), ana).json()["results"]
        path = f"/v1/gradings/{graded['grading_id']}/corrections"
        spoofed = client.post(path, json={"grade": graded["grade"], "operator": "ben"},
                              headers=ana)  # fmt: skip
        assert spoofed.status_code == 403, spoofed.text
        assert "ana's" in spoofed.json()["detail"] and "'ben'" in spoofed.json()["detail"]
        named = client.post(path, json={"grade": graded["grade"], "operator": " ana "},
                            headers=ana)  # fmt: skip
        unnamed = client.post(path, json={"grade": graded["grade"]}, headers=ana)
        assert (named.status_code, unnamed.status_code) == (201, 201)
        # the one bare key (named api-key) is shared: its sender says who corrects
        typed = client.post(path, json={"grade": graded["grade"], "operator": "Carla"},
                            headers=shared)  # fmt: skip
        assert typed.status_code == 201 and typed.json()["operator"] == "Carla"
    kept = history(open_store(db_url), graded["grading_id"])
    assert [c.operator for c in kept] == ["ana", "ana", "Carla"]  # nothing kept as ben's


# -- 3, 7: the kept-photos folder ------------------------------------------------------


def test_kept_photos_never_write_or_serve_through_a_link(colour_run, tmp_path):
    root, colour = colour_run
    kept, outside = tmp_path / "kept", tmp_path / "outside.txt"
    kept.mkdir()
    outside.write_text("precious")
    data = _photo(root)
    sha = hashlib.sha256(data).hexdigest()
    part = kept / f".{sha}.jpg.part"
    part.symlink_to(outside)  # planted before the start: cleared
    secret = "ab" * 32
    (kept / f"{secret}.jpg").symlink_to(outside)
    (kept / f"{'cd' * 32}.jpg").symlink_to(kept / f"{secret}.jpg")
    options = ServeOptions(run=colour, keep_photos=kept)
    with TestClient(create_app(options)) as client:
        cleared = not part.is_symlink()
        if cleared:
            part.symlink_to(outside)  # planted while it serves
        other = _photo(root, "mango_00001.jpg")
        other_sha = hashlib.sha256(other).hexdigest()
        (kept / f"{other_sha}.jpg").symlink_to(outside)  # a link in the copy's own place
        assert _grade(client, data).status_code == 200
        assert _grade(client, other).status_code == 200
        assert outside.read_bytes() == b"precious"
        for name, content in ((sha, data), (other_sha, other)):
            assert not (kept / f"{name}.jpg").is_symlink()
            assert (kept / f"{name}.jpg").read_bytes() == content
            served = client.get(f"/v1/photos/{name}")
            assert served.status_code == 200 and served.content == content
            assert served.headers["content-type"] == "image/jpeg"
        for name in (secret, "cd" * 32):  # links are never served, wherever they point
            assert client.get(f"/v1/photos/{name}").status_code == 404
    assert outside.read_bytes() == b"precious" and cleared


def test_a_full_disk_while_keeping_a_photo_is_a_503_and_leaves_no_part_file(
    colour_run, tmp_path, monkeypatch
):
    from mangograde.service import keeper

    root, colour = colour_run
    kept = tmp_path / "kept"
    kept.mkdir()
    old = time.time() - 3600
    stale = [kept / f".{'1' * 64}.jpg.part", kept / f".{'2' * 64}.png.0123abcd.part"]
    for part in stale:  # left by a process killed while writing them
        part.write_bytes(b"")
        os.utime(part, (old, old))
    foreign = kept / "notes.part"  # not a name the keeper gives: left alone
    foreign.write_text("mine")
    written = []

    def full(fd: int, data: bytes) -> None:
        written.append(os.write(fd, data[:100]))
        raise OSError(errno.ENOSPC, "No space left on device")

    with TestClient(create_app(ServeOptions(run=colour, keep_photos=kept))) as client:
        assert not any(p.exists() for p in stale) and foreign.read_text() == "mine"
        monkeypatch.setattr(keeper, "_write_all", full)
        answer = _grade(client, _photo(root))
        assert answer.status_code == 503, answer.text
        detail = answer.json()["detail"]
        assert f"kept-photos folder {kept} is full" in detail and "No space left" in detail
        assert written == [100]
        assert sorted(p.name for p in kept.iterdir()) == ["notes.part"]  # no .part left
        monkeypatch.undo()
        assert _grade(client, _photo(root)).status_code == 200  # space again: kept
    assert len([p for p in kept.iterdir() if p.suffix == ".jpg"]) == 1


# -- 10, 11, 15: what a client sends and what it is told --------------------------------


def test_a_grading_id_beyond_what_a_database_holds_is_refused_not_a_500(colour_run, db_url):
    _, colour = colour_run
    with TestClient(create_app(ServeOptions(run=colour, db=db_url))) as client:
        asked = {2**63: 422, 2**64 + 1: 422, 10**40: 422, 2**63 - 1: 422, 2**31: 422, 0: 422,
                 -1: 422, 2**31 - 1: 404, 7: 404}  # fmt: skip
        for grading_id, status in asked.items():
            answer = client.post(f"/v1/gradings/{grading_id}/corrections",
                                 json={"grade": "A", "operator": "ana"})  # fmt: skip
            assert answer.status_code == status, (grading_id, answer.text)


@pytest.mark.parametrize("body", ['{"grade": NaN}', '{"grade": Infinity, "operator": -Infinity}',
                                  '{"grade": "A", "operator": NaN}', "[NaN]"])  # fmt: skip
def test_a_bare_nan_in_a_json_body_is_a_clean_422(colour_run, body, tmp_path):
    _, colour = colour_run
    db = f"sqlite:///{tmp_path / 'r.db'}"
    with TestClient(create_app(ServeOptions(run=colour, db=db))) as client:
        answer = client.post("/v1/gradings/1/corrections", content=body,
                             headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"]  # valid JSON that says what was wrong


def test_a_404_says_only_what_is_missing_and_the_log_keeps_the_rest(colour_run, db_url, lines):
    root, colour = colour_run
    with TestClient(create_app(ServeOptions(run=colour, db=db_url))) as client:
        assert _grade(client, _photo(root), lot="x'); DROP TABLE gradings;--").status_code == 200
        asked = {
            "No lot named '<script>'.": [client.get("/v1/lots/<script>"),
                                         client.get("/v1/lots/<script>/report"),
                                         client.get("/v1/lots/<script>/to-check")],
            "No grading 424242.": [client.post("/v1/gradings/424242/corrections",
                                               json={"grade": "A", "operator": "ana"})],
        }  # fmt: skip
        for detail, answers in asked.items():
            for answer in answers:
                assert answer.status_code == 404 and answer.json() == {"detail": detail}
    where = open_store(db_url).where
    kept = [json.loads(line) for line in lines if '"not found"' in line]
    assert len(kept) == 4 and all(where in line["detail"] for line in kept)
    assert "DROP TABLE" in kept[0]["detail"]  # the other lots' names: for the log only


# -- 12, 13, 14: serve's own process ---------------------------------------------------


@pytest.mark.parametrize("limit", ["nan", "inf", "-inf", "0", "-5"])
def test_keep_photos_limit_must_be_a_finite_number_above_zero(colour_run, tmp_path, limit,
                                                              monkeypatch):  # fmt: skip
    import uvicorn

    def never(*args, **kwargs):
        raise AssertionError("serve started")

    monkeypatch.setattr(uvicorn, "run", never)
    _, colour = colour_run
    result = run("serve", colour, "--no-record", "--keep-photos", tmp_path / "kept",
                 "--keep-photos-limit-mb", limit)  # fmt: skip
    assert_clean_failure(result, "--keep-photos-limit-mb")
    assert "Traceback" not in result.output


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _serve(run_dir: Path, port: int, log: Path, *options: str, env=None):
    """``mangograde serve`` in a session of its own, once /readyz answers (or None); what
    it prints goes to ``log``."""
    import httpx

    with log.open("wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "mangograde", "serve", str(run_dir), "--port", str(port),
             "--no-record", *options],
            env=env or {k: v for k, v in os.environ.items() if "multiproc_dir" not in k.lower()},
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.kill()
    server.wait(10)
    return None


def _end(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_workers_end_when_their_master_is_killed(colour_run, tmp_path):
    if not sys.platform.startswith("linux") or not Path("/proc/self/stat").exists():
        pytest.skip("reads the processes from /proc (Linux)")
    _, colour = colour_run
    port = free_port()
    master = _serve(colour, port, tmp_path / "serve.log", "--workers", "2")
    if master is None:
        pytest.skip("serve --workers 2 did not get ready here in 120 s")
    children = _children(master.pid)
    try:
        assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
        os.kill(master.pid, signal.SIGKILL)
        master.wait(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in children):
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)], "workers outlived their master"
        assert _port_free(port)  # a restart can listen there again
    finally:
        _end(children)


def test_the_master_watch_ends_a_worker_whose_master_is_gone():
    code = ("import time\nfrom mangograde.service.app import end_with_master\n"
            "end_with_master(-1, every_s=0.05, grace_s=5)\ntime.sleep(60)\n")  # fmt: skip
    started = time.monotonic()
    ended = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert ended.returncode == -signal.SIGTERM, ended.stderr
    assert time.monotonic() - started < 50 and "master gone" in ended.stderr


def test_a_foreign_prometheus_folder_does_not_break_metrics(colour_run, tmp_path):
    import httpx

    _, colour = colour_run
    junk = tmp_path / "prom"
    junk.mkdir()
    (junk / "counter_123.db").write_bytes(b"not a metrics file" * 4)
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(junk)}
    port = free_port()
    server = _serve(colour, port, tmp_path / "serve.log", env=env)
    assert server is not None, "serve did not get ready in 120 s"
    try:
        for _ in range(2):
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert metrics.status_code == 200, metrics.text
            assert "mangograde_requests_total" in metrics.text
    finally:
        server.terminate()
        server.wait(20)
    assert sorted(p.name for p in junk.iterdir()) == ["counter_123.db"]  # left as it was
    said = (tmp_path / "serve.log").read_text()
    assert "PROMETHEUS_MULTIPROC_DIR" in said and "Traceback" not in said
