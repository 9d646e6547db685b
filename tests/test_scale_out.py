"""Independent fits on an existing engine: the same run on loky and on a Dask
LocalCluster gives the same run folder; the default in-process path the same grades."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

pytest.importorskip("dask.distributed")

FAMILIES = {
    "svm": ["--preset", "svm-study", "--set", "features.size=32", "--set", "n_components=10"],
    "rf": ["--preset", "rf-study", "--set", "n_estimators=10", "--set", "features.size=16"],
}


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[object]:
    root = tmp_path_factory.mktemp("scale")
    assert run("synth", root, "--n", "48", "--size", "48").exit_code == 0
    return [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_same_run_on_loky_and_on_a_dask_cluster(family, photos, tmp_path):
    outs = {}
    for backend in (None, "loky", "dask"):
        out = tmp_path / str(backend)
        extra = [] if backend is None else ["--backend", backend]
        result = run("train", *photos, *FAMILIES[family], "--cv", "3", "--out", out, *extra)
        assert result.exit_code == 0, result.output
        outs[backend] = out
    loky, dask = (outs[b] / "predictions.csv" for b in ("loky", "dask"))
    assert loky.read_bytes() == dask.read_bytes()
    # In this process BLAS may use more threads: the same grades, probabilities to 1e-5.
    here, there = _rows(outs[None] / "predictions.csv"), _rows(dask)
    assert [(r["image"], r["fold"], r["predicted"]) for r in here] == [
        (r["image"], r["fold"], r["predicted"]) for r in there
    ]
    for a, b in zip(here, there, strict=True):
        for key in (k for k in a if k.startswith("p_")):
            assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5)
    assert (outs["dask"] / "model" / "fold-2" / "bundle.json").is_file()


def test_backend_and_scheduler_are_checked(photos, tmp_path):
    result = run("train", *photos, "--model", "rf", "--backend", "spark", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "Unknown --backend 'spark'" in result.output
    result = run("train", *photos, "--model", "rf", "--scheduler", "tcp://h:8786",
                 "--out", tmp_path / "y")  # fmt: skip
    assert result.exit_code == 1 and "add --backend" in result.output


def test_sweep_search_and_ablate_fit_in_parallel_with_the_same_results(photos, tmp_path):
    sweep = ["sweep", *photos, "--param", "n_estimators", "--values", "3,6", "--cv", "2",
             "--set", "features.size=8"]  # fmt: skip
    assert run(*sweep, "--out", tmp_path / "a").exit_code == 0
    result = run(*sweep, "--out", tmp_path / "b", "--backend", "loky")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "sweep.csv").read_bytes() == (
        tmp_path / "b" / "sweep.csv"
    ).read_bytes()
    search = ["search", *photos, "--cv", "2", "--set", "features.size=16",
              "--set", "search.n_components=[4,8]", "--set", "search.C=[1,2]"]  # fmt: skip
    assert run(*search, "--out", tmp_path / "c").exit_code == 0
    result = run(*search, "--out", tmp_path / "d", "--backend", "loky")
    assert result.exit_code == 0, result.output
    here, there = (_rows(tmp_path / f / "search.csv") for f in ("c", "d"))
    assert [r["accuracy"] for r in here] == [r["accuracy"] for r in there]
    ablate = ["ablate", *photos, "--model", "rf", "--cv", "2", "--set", "features.size=8",
              "--vary", "n_estimators=2,4"]  # fmt: skip
    result = run(*ablate, "--out", tmp_path / "e", "--backend", "threading")
    assert result.exit_code == 0, result.output
    assert len(_rows(tmp_path / "e" / "ablation.csv")) == 2


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("not an address", "not a Dask scheduler address"),
        ("tcp://127.0.0.1:99999999", "not a Dask scheduler address"),
        ("tcp://127.0.0.1:9", "Cannot reach the Dask scheduler"),
    ],
)
def test_a_bogus_dask_scheduler_is_named_fast(tmp_path, address, said):
    import time

    pytest.importorskip("dask.distributed")
    from typer.testing import CliRunner

    from mangograde.cli import app

    from .helpers import write_photo

    for g, grade in enumerate("ABC"):
        for i in range(4):
            write_photo(tmp_path / "g" / grade / f"{i}.jpg", seed=10 * g + i, size=(24, 24))
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["train", str(tmp_path / "g"), "--model", "rf", "--cv",
                                      "2", "--backend", "dask", "--scheduler", address,
                                      "--out", str(tmp_path / "r")])  # fmt: skip
    assert time.perf_counter() - started < 40
    assert result.exit_code == 1 and said in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()
