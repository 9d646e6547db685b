"""data audit: photos whose given grade the runs find unlikely, ranked by cleanlab."""

from __future__ import annotations

import csv
import shutil

import pytest

pytest.importorskip("cleanlab")

from .service_helpers import train_tiny  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402
from .test_cli_models import read_csv  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("audit") / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path_factory.mktemp("runs") / "svm", "--model", "svm", "--cv", "2")
    return root, out


def with_probabilities(run_dir, target, doubted, sure=0.9):
    """A copy of ``run_dir`` whose out-of-fold probabilities put ``sure`` on each photo's
    given grade, except on the ``doubted`` photos, where they put it on another grade:
    what several good models say of photos whose given grade is wrong."""
    shutil.copytree(run_dir, target)
    rows = read_csv(target / "predictions.csv")
    grades = [k[2:] for k in rows[0] if k.startswith("p_")]
    for row in rows:
        given = grades.index(row["true"])
        chosen = (given + 2) % 3 if row["image"] in doubted else given
        for i, grade in enumerate(grades):
            row[f"p_{grade}"] = f"{sure if i == chosen else (1 - sure) / 2:.6f}"
        row["predicted"] = grades[chosen]
    with (target / "predictions.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return target


def test_photos_every_run_doubts_come_first(trained, tmp_path):
    _, out = trained
    images = [r["image"] for r in read_csv(out / "predictions.csv")]
    doubted = images[3:6]
    runs = [with_probabilities(out, tmp_path / "a", doubted),
            with_probabilities(out, tmp_path / "b", doubted, sure=0.8)]  # fmt: skip
    done = run("data", "audit", *runs, "--out", tmp_path / "audit", "--top", "10")
    assert done.exit_code == 0, done.output
    photos = len(images)
    assert f"3 suspected label errors among {photos} photos ({3 / photos:.0%}): 3 misgraded by " \
        "every run, 0 by none" in done.output  # fmt: skip
    assert "Warning" not in done.output
    weak = [with_probabilities(out, tmp_path / f"weak-{i}", images[: photos // 2]) for i in (1, 2)]
    doubtful = run("data", "audit", *weak, "--out", tmp_path / "weak-audit")
    assert doubtful.exit_code == 0, doubtful.output
    assert f"the runs grade only {(photos - photos // 2) / photos:.0%} of these" in doubtful.output
    ranked = read_csv(tmp_path / "audit" / "label_issues.csv")
    assert sorted(r["image"] for r in ranked) == sorted(doubted)
    assert all(r["misgraded_by_of_2"] == "2" and r["given"] != r["suggested"] for r in ranked)
    sheet = (tmp_path / "audit" / "label_issues.html").read_text()
    assert sheet.count("data:image/jpeg;base64,") == 3 and doubted[0] in sheet
    again = run("data", "audit", *runs, "--out", tmp_path / "audit")
    assert_clean_failure(again, "--overwrite")


def test_a_run_of_one_fold_is_refused(trained, tmp_path):
    root, _ = trained
    one = train_tiny(root, tmp_path / "one", "--model", "svm", "--cv", "2", "--only-fold", "0")
    assert_clean_failure(run("data", "audit", one, "--out", tmp_path / "a"), "all folds")
