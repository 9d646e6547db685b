"""mangograde serve: the API through FastAPI's TestClient on a tiny trained run."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mangograde.service import ServeOptions, create_app  # noqa: E402
from mangograde.service.batcher import MicroBatcher  # noqa: E402

from .service_helpers import gif, jpeg, png_bomb, train_tiny  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402
from .test_cli_models import read_csv  # noqa: E402


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("serve") / "s", n=36, size=48, seed=2)


@pytest.fixture(scope="module")
def cnn_run(synth, tmp_path_factory):
    return train_tiny(synth, tmp_path_factory.mktemp("runs") / "cnn")


@pytest.fixture(scope="module")
def client(cnn_run):
    with TestClient(create_app(ServeOptions(run=cnn_run))) as client:
        yield client


def upload(*photos: tuple[str, bytes]):
    return [("files", (name, data, "application/octet-stream")) for name, data in photos]


def test_grades_photos_in_upload_order_as_predict_does(client, synth, tmp_path, cnn_run):
    names = sorted(p.name for p in (synth / "train").iterdir())[:5]
    photos = [(n, (synth / "train" / n).read_bytes()) for n in names]
    response = client.post("/v1/grade", files=upload(*photos[::-1]))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["image_id"] for r in results] == names[::-1]
    csv = tmp_path / "p.csv"
    done = run("predict", cnn_run, *(synth / "train" / n for n in names), "--out", csv)
    assert done.exit_code == 0, done.output
    expected = {r["image_id"]: r for r in read_csv(csv)}
    for r in results:
        assert r["model"] == {"run": "cnn", "fold_rule": "mean of the folds' probabilities"}
        assert set(r["probabilities"]) == {"A", "B", "C"}
        assert r["grade"] == expected[r["image_id"]]["label"]
        for grade, p in r["probabilities"].items():
            assert p == pytest.approx(float(expected[r["image_id"]][f"p_{grade}"]), abs=2e-6)


@pytest.mark.parametrize(
    ("name", "data", "status", "phrase"),
    [
        ("notes.txt", b"this is not a photo at all, only words", 415, "text file"),
        ("anim.gif", gif(), 415, "GIF"),
        ("cut.jpg", jpeg()[:300], 422, "truncated or corrupt"),
        ("bomb.png", png_bomb(), 422, "too large"),
    ],
)
def test_a_bad_photo_gets_its_own_error_and_the_others_are_graded(
    client, name, data, status, phrase
):
    response = client.post("/v1/grade", files=upload(("good.jpg", jpeg(1)), (name, data)))
    assert response.status_code == 200
    good, bad = response.json()["results"]
    assert good["grade"] in ("A", "B", "C") and "error" not in good
    assert bad["image_id"] == name and bad["status"] == status and phrase in bad["error"]
    alone = client.post("/v1/grade", files=upload((name, data)))
    assert alone.status_code == status and phrase in alone.text
    again = client.post("/v1/grade", files=upload(("after.jpg", jpeg(2))))  # process unharmed
    assert again.status_code == 200 and again.json()["results"][0]["grade"]


def test_uploads_over_the_limit_get_413_before_being_read(cnn_run):
    app = create_app(ServeOptions(run=cnn_run, max_upload_mb=0.01))
    with TestClient(app) as client:
        big = upload(("big.jpg", jpeg(size=(400, 400)) + b"\0" * 20_000))
        assert client.post("/v1/grade", files=big).status_code == 413

        def stream():  # no Content-Length: counted while it arrives
            yield b'--cut\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'
            for _ in range(30):
                yield b"x" * 1024

        kind = {"content-type": "multipart/form-data; boundary=cut"}
        cut = client.post("/v1/grade", content=stream(), headers=kind)
        assert cut.status_code == 413 and "limit of 0.01 MB" in cut.json()["detail"]
        assert client.post("/v1/grade", files=upload(("ok.jpg", jpeg()))).status_code == 200


def test_the_api_key_is_required_compared_and_never_logged(cnn_run, lines):
    secret = "k3y-that-must-not-leak"
    with TestClient(create_app(ServeOptions(run=cnn_run, api_key=secret))) as client:
        photo = upload(("a.jpg", jpeg()))
        assert client.post("/v1/grade", files=photo).status_code == 401
        wrong = client.post("/v1/grade", files=photo, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["detail"]
        assert client.get("/v1/model").status_code == 401
        right = client.post("/v1/grade", files=photo, headers={"X-API-Key": secret})
        assert right.status_code == 200
        assert client.get("/healthz").status_code == 200  # probes need no key
    assert lines and not any(secret in line for line in lines)


def test_key_files_non_ascii_keys_docs_and_an_open_address(cnn_run, tmp_path, monkeypatch):
    import os

    import uvicorn

    from mangograde.cli import app as cli
    from mangograde.service.app import read_api_keys

    keys = tmp_path / "keys"
    keys.write_text("packer clé-de-sûreté\n", encoding="utf-8")
    with TestClient(create_app(ServeOptions(run=cnn_run, api_keys=read_api_keys(keys)))) as c:
        given = {"X-API-Key": "clé-de-sûreté".encode()}  # as a UTF-8 client sends it
        assert c.get("/v1/model", headers=given).status_code == 200
        assert c.get("/docs").status_code == 404  # its scripts would come from a CDN
        assert c.get("/openapi.json").status_code == 200
    with TestClient(create_app(ServeOptions(run=cnn_run, docs=True))) as c:
        assert c.get("/docs").status_code == 200
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k))
    for bad in ("/dev/zero", fifo, tmp_path):
        said = CliRunner().invoke(cli, ["serve", str(cnn_run), "--api-key-file", str(bad)])
        assert said.exit_code == 1 and "not a regular file of keys" in said.output, said.output
    assert not started
    said = CliRunner().invoke(cli, ["serve", str(cnn_run), "--host", "0.0.0.0", "--no-record"])
    assert said.exit_code == 0, said.output
    assert "Warning" in said.output and "without --api-key-file" in said.output and started
    said = CliRunner().invoke(cli, ["serve", str(cnn_run), "--no-record", "--api-key-file",
                                    str(keys), "--host", "0.0.0.0"])  # fmt: skip
    assert said.exit_code == 0 and "Warning" not in said.output


def test_no_cors_unless_an_origin_is_given(cnn_run, client):
    origin = {"Origin": "https://tablet.example"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    app = create_app(ServeOptions(run=cnn_run, cors_origins=["https://tablet.example"]))
    with TestClient(app) as allowed:
        answer = allowed.get("/healthz", headers=origin)
        assert answer.headers["access-control-allow-origin"] == "https://tablet.example"


def test_internal_errors_carry_no_traceback_and_requests_log_one_json_line(
    client, monkeypatch, lines
):
    service = client.app.state.service

    def broken(images):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service.batcher, "_grade", broken)
    response = client.post("/v1/grade", files=upload(("a.jpg", jpeg())))
    assert response.status_code == 500
    assert "Traceback" not in response.text and "secret internals" not in response.text
    monkeypatch.undo()
    assert client.post("/v1/grade", files=upload(("b.jpg", jpeg()))).status_code == 200
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == [500, 200]
    assert records[0]["error"] == "RuntimeError" and records[1]["photos"] == 1
    assert all(len(line) < 4000 and "\n" not in line.strip() for line in lines[1:])


def test_health_readiness_model_and_metrics(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    info = client.get("/v1/model").json()
    assert info["grades"] == ["A", "B", "C"] and info["family"] == "cnn"
    assert info["preset"] == "cnn-fast" and info["explains_with"] == "gradcam"
    assert 0 <= info["metrics"]["accuracy"] <= 1 and info["data"]["n_folds"] == 2
    graded = client.post("/v1/grade", files=upload(("m.jpg", jpeg(5)))).json()["results"][0]
    text = client.get("/metrics").text
    assert f'mangograde_photos_graded_total{{grade="{graded["grade"]}"}}' in text
    assert 'mangograde_requests_total{route="/v1/grade",status="200"}' in text
    assert "mangograde_request_seconds_bucket" in text and "mangograde_batch_photos" in text
    schema = client.get("/openapi.json").json()
    assert {"/v1/grade", "/v1/explain", "/v1/model"} <= set(schema["paths"])


def test_explain_answers_a_heat_map_png(client, synth):
    photo = (synth / "train" / "mango_00000.jpg").read_bytes()
    response = client.post("/v1/explain", files={"file": ("m.jpg", photo)})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    caption = unquote(response.headers["x-explanation"])  # the command line's words
    assert caption.startswith("Grad-CAM: warm regions drove grade ") and caption[-1] in "ABC"
    bad = client.post("/v1/explain", files={"file": ("x.gif", gif())})
    assert bad.status_code == 415 and "x.gif" in bad.json()["detail"]


def test_lime_explains_a_classical_run(synth, tmp_path):
    svm = train_tiny(synth, tmp_path / "svm", "--model", "svm", "--cv", "2")
    with TestClient(create_app(ServeOptions(run=svm, lime_samples=40))) as client:
        assert client.get("/v1/model").json()["explains_with"] == "lime"
        photo = {"file": ("m.jpg", (synth / "train" / "mango_00001.jpg").read_bytes())}
        assert client.post("/v1/explain?method=gradcam", files=photo).status_code == 422
        response = client.post("/v1/explain", files=photo)
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
        caption = unquote(response.headers["x-explanation"])
        assert caption.startswith("LIME: green regions support grade ")
    off = create_app(ServeOptions(run=svm, explain=False))
    with TestClient(off) as client:
        assert client.post("/v1/explain", files=photo).status_code == 404


def test_concurrent_photos_share_one_forward_pass():
    calls: list[int] = []

    def grade(images):
        calls.append(len(images))
        return np.full((len(images), 3), 1 / 3), np.arange(len(images)) % 3

    async def main(max_batch: int) -> list[int]:
        batcher = MicroBatcher(grade, max_batch=max_batch, wait_s=0.05)
        await batcher.start()
        photos = [np.full((4, 4, 3), i, dtype=np.uint8) for i in range(5)]
        answers = await asyncio.gather(*(batcher.grade(p) for p in photos))
        await batcher.stop()
        return [code for _, code in answers]

    assert asyncio.run(main(32)) == [0, 1, 2, 0, 1] and calls == [5]
    calls.clear()
    assert asyncio.run(main(2)) == [0, 1, 0, 1, 0] and calls == [2, 2, 1]


def test_lanes_grade_batches_at_once_and_run_has_the_model_alone():
    """Two lanes grade two batches at the same time (each in its own thread); a call
    through run() (an explanation) never overlaps a batch; the answers are the same."""
    import threading
    import time

    lock = threading.Lock()
    busy, most, log, inside = [0], [0], [], []

    def work(kind):
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
            log.append((kind, busy[0], list(inside)))
            inside.append(kind)
        time.sleep(0.15)
        with lock:
            busy[0] -= 1
            inside.remove(kind)

    def grade(images):
        work("grade")
        return np.full((len(images), 3), 1 / 3), images[:, 0, 0, 0].astype(int) % 3

    async def main(lanes: int) -> list[int]:
        batcher = MicroBatcher(grade, max_batch=2, wait_s=0.01, lanes=lanes)
        await batcher.start()
        photos = [np.full((4, 4, 3), i, dtype=np.uint8) for i in range(6)]
        graded = asyncio.gather(*(batcher.grade(p) for p in photos))
        await asyncio.sleep(0.05)
        alone = batcher.run(work, "run")
        answers, _ = await asyncio.gather(graded, alone)
        await batcher.stop()
        return [int(code) for _, code in answers]

    for lanes, overlap in ((1, 1), (2, 2)):
        most[0] = 0
        log.clear()
        assert asyncio.run(main(lanes)) == [0, 1, 2, 0, 1, 2]
        assert most[0] == overlap
        assert ("run", 1, []) in log  # alone, and no batch began while it worked
        assert all("run" not in others for _, _, others in log)
    with pytest.raises(ValueError, match="lanes must be 1 or more"):
        MicroBatcher(grade, lanes=0)


def test_serve_with_two_grading_threads_answers_as_with_one(cnn_run):
    photos = [("files", (f"p{i}.jpg", jpeg(seed=i))) for i in range(4)]
    answers = []
    for threads in (1, 2):
        with TestClient(create_app(ServeOptions(run=cnn_run, grading_threads=threads))) as client:
            done = client.post("/v1/grade", files=photos)
            assert done.status_code == 200
            answers.append([(r["grade"], r["probabilities"]) for r in done.json()["results"]])
    assert answers[0] == answers[1]
    refused = run("serve", cnn_run, "--grading-threads", "0")
    assert refused.exit_code == 2 and "'--grading-threads'" in refused.output


def test_serve_refuses_a_bad_run_or_key_file_like_predict(tmp_path, cnn_run):
    missing = tmp_path / "nothing"
    served = run("serve", missing)
    (tmp_path / "photos").mkdir()
    predicted = run("predict", missing, tmp_path / "photos", "--out", tmp_path / "p.csv")
    assert_clean_failure(served)
    assert served.output.strip().splitlines()[-1] == predicted.output.strip().splitlines()[-1]
    empty = tmp_path / "key"
    empty.write_text("  \n")
    assert_clean_failure(run("serve", cnn_run, "--api-key-file", empty), "is empty")


def test_one_request_cannot_take_every_decode(cnn_run):
    import io

    from PIL import Image

    def big(side: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (side, side), (200, 150, 40)).save(buffer, "PNG")  # small on disk
        return buffer.getvalue()

    options = ServeOptions(run=cnn_run, max_files=3, max_request_pixels=1_000_000)
    with TestClient(create_app(options)) as c:
        many = c.post("/v1/grade", files=upload(*[(f"{i}.jpg", jpeg()) for i in range(4)]))
        assert many.status_code == 413 and "--max-files" in many.json()["detail"]
        huge = c.post("/v1/grade", files=upload(*[(f"{i}.png", big(600)) for i in range(3)]))
        assert huge.status_code == 413 and "1,080,000 pixels" in huge.json()["detail"]
        fine = c.post("/v1/grade", files=upload(*[(f"{i}.png", big(600)) for i in range(2)]))
        assert fine.status_code == 200 and len(fine.json()["results"]) == 2


def test_the_pixel_budget_is_never_exceeded_and_served_in_arrival_order():
    from mangograde.service.guard import PixelBudget

    async def main() -> tuple[list[str], dict[str, int]]:
        budget, order, peak = PixelBudget(10), [], {}

        async def photo(name: str, pixels: int, delay: float) -> None:
            await asyncio.sleep(delay)
            await budget.acquire(pixels)
            order.append(name)
            peak[name] = budget.in_use  # all pixels in flight once this photo starts
            await asyncio.sleep(0.01)
            await budget.release(pixels)

        await asyncio.gather(photo("a", 6, 0), photo("b", 6, 0.001), photo("c", 2, 0.002),
                             photo("huge", 40, 0.003), photo("d", 1, 0.004))  # fmt: skip
        return order, peak

    order, peak = asyncio.run(main())
    assert order == ["a", "b", "c", "huge", "d"]  # c fits beside a, yet waits its turn
    assert peak["huge"] == 40  # alone
    assert all(used <= 10 for name, used in peak.items() if name != "huge")


def test_slow_clients_are_cut_off_and_their_sockets_freed(cnn_run):
    import socket
    import time

    from .service_helpers import serve_process

    server, base = serve_process(cnn_run, "--no-record", "--header-timeout", "1",
                                 "--body-timeout", "1")  # fmt: skip
    host, port = base.removeprefix("http://").split(":")
    try:
        half = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
        for s in half:
            s.sendall(b"POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Le")
        cut = socket.create_connection((host, int(port)), timeout=10)
        cut.sendall(b"POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                    b"boundary=b\r\nContent-Length: 5000\r\n\r\n--b\r\n")  # fmt: skip
        started = time.monotonic()
        assert all(s.recv(100) == b"" for s in half)  # closed by the server
        assert time.monotonic() - started < 8
        answer = b"".join(iter(lambda: cut.recv(4096), b""))  # to the server's close
        assert answer.startswith(b"HTTP/1.1 408") and b"stopped arriving" in answer
        import httpx

        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # still serving
    finally:
        server.terminate()
        server.wait(20)
