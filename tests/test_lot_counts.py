"""One lot, one number (issue 35): after corrections through the API, ``lots show``,
``GET /v1/lots/{lot}``, the lot report and the to-check list all give the same count of
photos left to check, and fruits are counted by grade, best grade first."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

pytest.importorskip("sqlalchemy")
pytest.importorskip("fastapi")

from .test_cli import run  # noqa: E402


def _noise(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_every_screen_says_the_same_checks_left_after_corrections(colour_run, tmp_path):
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, colour = colour_run
    url = f"sqlite:///{tmp_path / 'lot.db'}"
    names = sorted(p.name for p in (root / "train").iterdir())[:4]
    files = [("files", (n, (root / "train" / n).read_bytes(), "image/jpeg")) for n in names]
    files += [("files", (f"noise-{i}.png", _noise(i), "image/png")) for i in range(5)]
    fruits = ["m1", "m1", "m2", "m3", "n1", "n1", "n2", "n3", "n4"]
    with TestClient(create_app(ServeOptions(run=colour, db=url))) as client:
        body = client.post("/v1/grade", files=files, data={"lot": "L", "fruit": fruits}).json()
        checked = [r for r in body["results"] if r.get("check")]
        assert len(checked) >= 4, body  # the noise photos at least are unfamiliar
        grades = client.get("/v1/model").json()["grades"]
        for result in checked[:3]:
            corrected = client.post(f"/v1/gradings/{result['grading_id']}/corrections",
                                    json={"grade": grades[0], "operator": "ana"})  # fmt: skip
            assert corrected.status_code == 201, corrected.text
        left = len(checked) - 3
        tally = client.get("/v1/lots/L").json()
        queue = client.get("/v1/lots/L/to-check").json()["items"]
        report = client.get("/v1/lots/L/report").text
    shown = run("lots", "show", "L", "--db", url)
    assert shown.exit_code == 0, shown.output
    assert tally["checks_left"] == sum(tally["checks"].values()) == len(queue) == left
    assert f"Left to check by hand: {left}" in report
    assert re.search(rf"Left to check by hand: {left} \(", shown.output), shown.output
    assert tally["corrections"] == 3 and tally["gradings"] == len(files)
    # fruits by grade, best first, as many as were sent; photos likewise in grade order
    assert tally["fruits"] == sum(tally["fruit_mix"].values()) == len(set(fruits))
    assert tally["grades"] == grades
    order = [grades.index(g) for g in tally["fruit_mix"]]
    assert order == sorted(order)
    assert [grades.index(g) for g in tally["mix"]] == sorted(grades.index(g) for g in tally["mix"])
    assert "Fruits by grade" in report and "Fruits by grade" in shown.output
    assert tally["unfamiliar"] == sum(r.get("reason") == "unfamiliar" for r in body["results"])
