"""Issue 36 point 2 and 3: ``mangograde ensemble RUN RUN --out DIR`` makes a run graded by
the weighted mean of its members' calibrated probabilities, usable as any run; members
that do not match are refused naming what differs; ``train --preset best`` trains the
members on the same folds and writes their ensemble."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from mangograde.data.synth import synthesize
from mangograde.runs import open_predictor, open_run

from .test_cli import assert_clean_failure, run

GRADES = ("A", "B", "C")
RF = ("--model", "rf", "--set", "features.size=16", "--set", "n_estimators=20")
COLOUR = ("--preset", "colour-texture", "--set", "features.size=16", "--set", "n_estimators=20")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _proba(rows: list[dict[str, str]]) -> np.ndarray:
    return np.array([[float(r[f"p_{g}"]) for g in GRADES] for r in rows])


def _train(root: Path, out: Path, *recipe: str, cv: str = "3", seed: str = "0") -> Path:
    data = [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]
    done = run("train", *data, *recipe, "--cv", cv, "--seed", seed, "--out", out)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    work = tmp_path_factory.mktemp("ensemble")
    root = synthesize(work / "s", n=45, size=48, seed=5)
    rf = _train(root, work / "rf", *RF)
    colour = _train(root, work / "colour", *COLOUR)
    return root, rf, colour, work


@pytest.fixture(scope="module")
def both(members):
    """The ensemble of the two members (made once: the tests read it), and what it said."""
    _, rf, colour, work = members
    done = run("ensemble", rf, colour, "--out", work / "both")
    assert done.exit_code == 0, done.output
    return work / "both", done


@pytest.fixture(scope="module")
def exported(both):
    export = both[0].parent / "export"
    done = run("export", both[0], "--out", export)
    assert done.exit_code == 0, done.output
    return export


def test_an_ensemble_is_the_weighted_mean_of_its_members_and_grades_as_a_run(
    members, both, tmp_path
):
    root, rf, colour, _ = members
    out, done = both
    assert "Ensemble of 2 runs" in done.output and "rf 0.50" in done.output
    ensemble = open_run(out)
    assert ensemble.model_kind == "ensemble" and ensemble.settings["params"]["members"] == [
        "rf",
        "colour",
    ]
    # Out of fold: the mean of the members' calibrated probabilities, then its own
    # temperature (the grades of the mean before it are the same: argmax).
    mine = {r["image"]: r for r in _rows(out / "predictions.csv")}
    theirs = [{r["image"]: r for r in _rows(m / "predictions.csv")} for m in (rf, colour)]
    images = sorted(mine)
    mean = np.mean([_proba([t[i] for i in images]) for t in theirs], axis=0)
    ours = _proba([mine[i] for i in images])
    assert [mine[i]["fold"] for i in images] == [theirs[0][i]["fold"] for i in images]
    np.testing.assert_array_equal(ours.argmax(1), mean.argmax(1))
    assert (out / "fruits.csv").is_file() and (out / "calibration.json").is_file()
    metrics = ensemble.metrics
    assert set(metrics["members"]) == {"rf", "colour"} and "fruit" in metrics
    assert len(metrics["accuracy_folds"]) == 3 and np.isfinite(metrics["accuracy_std"])
    assert metrics["familiar"]["threshold"] == 1.0
    # A fold model grades its held-out photos as predictions.csv says (before the
    # ensemble's temperature), from the members' own fold models.
    fold0 = [i for i in images if mine[i]["fold"] == "0"]
    from mangograde.images import load_images

    predictor = open_predictor(out, fold=0)
    photos = load_images([root / "train" / i for i in fold0], predictor.geometry).arrays
    raw = predictor.model_probabilities(photos)[0]
    expected = np.mean([_proba([t[i] for i in fold0]) for t in theirs], axis=0)
    np.testing.assert_allclose(raw, expected, atol=2e-6)  # as stored: 6 decimals
    # A run like any other: predict, evaluate, compare.
    graded = tmp_path / "graded.csv"
    assert run("predict", out, root / "dev", "--out", graded).exit_code == 0
    assert len(_rows(graded)) == len(list((root / "dev").iterdir()))
    evaluated = run("evaluate", out, root / "dev", "--labels", root / "dev.csv")
    assert evaluated.exit_code == 0, evaluated.output
    # compare and the report show the ensemble beside the members it names
    report = tmp_path / "report.html"
    compared = run("compare", out, "--out", report, "--mistakes", "0")
    assert compared.exit_code == 0, compared.output
    page = report.read_text(encoding="utf-8")
    assert "both, the mean of rf and colour" in page
    from mangograde.workflows.compare import with_members

    beside, missing = with_members([open_run(out)])
    assert [r.name for r in beside] == ["both", "rf", "colour"] and not missing


def test_an_unfamiliar_photo_is_one_some_member_finds_unfamiliar(members, both):
    root, rf, colour, _ = members
    out = both[0]
    from mangograde.images import load_images

    ensemble = open_predictor(out)
    photos = sorted((root / "dev").iterdir())[:6]
    arrays = load_images(photos, ensemble.geometry).arrays
    noise = np.random.default_rng(0).integers(0, 256, arrays.shape, dtype=np.uint8)
    batch = np.concatenate([arrays, noise])
    _, _, scores = ensemble.grade_and_score(batch)
    either = ensemble.unfamiliar(scores)
    flags = []
    for member in (rf, colour):
        grader = open_predictor(member)
        own = load_images(photos, grader.geometry).arrays
        from mangograde.features.pixels import resize_images

        mine = np.concatenate([own, resize_images(noise, grader.geometry.size)])
        flags.append(grader.unfamiliar(grader.grade_and_score(mine)[2]))
    assert either[len(photos) :].all()  # noise: unfamiliar
    # where every member finds a photo familiar, so does the ensemble
    assert not either[~np.logical_or(*flags)].any()


def test_explain_shows_the_ensemble_and_each_members_view(members, both, tmp_path):
    root, rf, colour, _ = members
    out = both[0]
    photo = sorted((root / "dev").iterdir())[0]
    png = tmp_path / "why.png"
    done = run("explain", out, photo, "--out", png, "--samples", "20")
    assert done.exit_code == 0, done.output
    assert "rf alone:" in done.output and "colour alone:" in done.output
    from PIL import Image

    with Image.open(png) as figure:  # three panels side by side (or stacked)
        assert max(figure.size) > 2 * min(figure.size) or figure.size[0] > 600


def test_serve_grades_with_an_ensemble_and_flags_what_no_member_knows(members, both):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    root, rf, colour, _ = members
    out = both[0]
    photo = sorted((root / "dev").iterdir())[0].read_bytes()
    with TestClient(create_app(ServeOptions(run=out))) as client:
        info = client.get("/v1/model").json()
        assert info["run"] == "both"
        answer = client.post("/v1/grade", files=[("files", ("a.png", photo))]).json()
        result = answer["results"][0]
        assert result["grade"] in GRADES and isinstance(result["familiarity"], float)
        assert result["unfamiliar"] == (result["familiarity"] > 1.0)  # the ensemble's cut-off


def test_fit_weights_are_chosen_on_other_folds_and_recorded(members, tmp_path):
    _, rf, colour, _ = members
    out = tmp_path / "fit"
    done = run("ensemble", rf, colour, "--out", out, "--weights", "fit")
    assert done.exit_code == 0, done.output
    weights = open_run(out).metrics["weights"]
    assert weights["rule"] == "fit" and set(weights["per_fold"]) == {"0", "1", "2"}
    for chosen in [weights["chosen"], *weights["per_fold"].values()]:
        assert abs(sum(chosen) - 1) < 1e-9 and min(chosen) >= 0


def test_members_that_do_not_match_are_refused_naming_what_differs(members, tmp_path):
    root, rf, colour, work = members
    refused = run("ensemble", rf, "--out", tmp_path / "one")
    assert_clean_failure(refused, "2 or more runs")
    refused = run("ensemble", rf, rf, "--out", tmp_path / "twice")
    assert_clean_failure(refused, "given twice")
    other_folds = _train(root, tmp_path / "rf-seed", *RF, seed="1")
    assert_clean_failure(run("ensemble", rf, other_folds, "--out", tmp_path / "x"), "folds")
    fewer = _train(root, tmp_path / "rf-cv2", *RF, cv="2")
    assert_clean_failure(run("ensemble", rf, fewer, "--out", tmp_path / "y"), "folds")
    export = tmp_path / "export"
    export.mkdir()
    (export / "grader.json").write_text("{}", encoding="utf-8")
    assert_clean_failure(run("ensemble", rf, export, "--out", tmp_path / "z"), "is an export")
    adapted = tmp_path / "adapted"
    shutil.copytree(colour, adapted)
    config = adapted / "config.yaml"
    config.write_text(config.read_text() + f"adapt:\n  parent: {colour}\n", encoding="utf-8")
    assert_clean_failure(run("ensemble", rf, adapted, "--out", tmp_path / "w"), "adapted from")
    unordered = tmp_path / "unordered"
    shutil.copytree(colour, unordered)
    config = unordered / "config.yaml"
    config.write_text(config.read_text().replace("labels: ordered", "labels: unordered"),
                      encoding="utf-8")  # fmt: skip
    refused = run("ensemble", rf, unordered, "--out", tmp_path / "v")
    assert_clean_failure(refused, "(unordered classes)", "(ordered grades)", "same labels")
    names = ("one", "twice", "x", "y", "z", "w", "v")
    assert not any((tmp_path / n).exists() for n in names)


def test_an_ensemble_is_not_a_member_and_cannot_be_adapted(members, both, tmp_path):
    root, rf, colour, _ = members
    out = both[0]
    assert_clean_failure(run("ensemble", out, rf, "--out", tmp_path / "n"), "itself an ensemble")
    adapted = run("adapt", out, root / "dev", "--labels", root / "dev.csv",
                  "--out", tmp_path / "adapted")  # fmt: skip
    assert adapted.exit_code != 0 and "adapt each of its member runs" in adapted.output


def test_train_preset_best_trains_the_members_on_the_same_folds(members, tmp_path):
    root = members[0]
    data = [root / "train", "--labels", root / "train.csv", "--groups", root / "groups.csv"]
    tiny = ("--set", "members=[colour-texture, rf]")
    done = run("train", *data, "--preset", "best", *tiny, "--cv", "2", "--out", tmp_path / "b")
    assert done.exit_code == 0, done.output
    assert "Member 1 of 2: colour-texture" in done.output
    assert "Member 2 of 2: rf" in done.output
    best = open_run(tmp_path / "b")
    assert best.settings["preset"] == "best"
    assert [m["run"] for m in best.settings["ensemble"]] == ["members/colour-texture", "members/rf"]
    folds = [open_run(tmp_path / "b" / "members" / m).held_out for m in ("colour-texture", "rf")]
    order = [dict(zip(h.image_ids, h.folds, strict=True)) for h in folds]
    assert order[0] == order[1]
    assert len(best.held_out.image_ids) == len(folds[0].image_ids)


def test_the_members_temperature_is_the_runs_calibration():
    from mangograde.evaluation.temperature import apply_temperature
    from mangograde.models.ensemble import tempered

    proba = np.random.default_rng(1).dirichlet(np.ones(3), size=50)
    proba[0] = [1.0, 0.0, 0.0]
    for temperature in (0.4, 1.0, 2.5):
        np.testing.assert_array_equal(tempered(proba, temperature),
                                      apply_temperature(proba, temperature))  # fmt: skip


def _graded(path: Path) -> tuple[list[str], np.ndarray]:
    rows = _rows(path)
    return [r["label"] for r in rows], _proba(rows)


def test_an_ensemble_exports_to_one_folder_that_grades_as_its_run(
    members, both, exported, tmp_path
):
    import json

    root, rf, colour, _ = members
    out, export = both[0], exported
    manifest = json.loads((export / "grader.json").read_text(encoding="utf-8"))
    assert manifest["engine"] == "ensemble" and manifest["folds"] == 3
    folders = [m["folder"] for m in manifest["members"]]
    assert all((export / f / "grader.json").is_file() for f in folders)
    assert manifest["parity_max_abs_diff"] <= 1e-5
    ran, exported = tmp_path / "run.csv", tmp_path / "export.csv"
    assert run("predict", out, root / "dev", "--out", ran).exit_code == 0
    assert run("predict", export, root / "dev", "--out", exported).exit_code == 0
    (labels, proba), (their_labels, theirs) = _graded(ran), _graded(exported)
    assert labels == their_labels
    np.testing.assert_allclose(proba, theirs, atol=1e-5)
    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    photo = sorted((root / "dev").iterdir())[0].read_bytes()
    with TestClient(create_app(ServeOptions(run=export))) as client:
        assert "ensemble export" in client.get("/v1/model").json()["fold_rule"]
        answer = client.post("/v1/grade", files=[("files", ("a.png", photo))]).json()
        assert answer["results"][0]["grade"] in GRADES


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m["members"][0]["weights"].__setitem__(0, 0.9), "weights summing"),
        (lambda m: m["members"][1].update(folder="../elsewhere"), "'members'"),
        (lambda m: m.update(temperature=float("nan")), "'temperature'"),
        (lambda m: m.update(folds=2), "'members'"),
        (lambda m: m["files"].clear(), "'files'"),
    ],
)
def test_a_tampered_ensemble_export_is_refused_naming_the_field(
    members, exported, tmp_path, edit, named
):
    import json

    _, rf, colour, _ = members
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    path = export / "grader.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    edit(manifest)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    refused = run("predict", export, members[0] / "dev", "--out", tmp_path / "x.csv")
    assert_clean_failure(refused, named)


def test_a_changed_member_file_is_refused(members, exported, tmp_path):
    _, rf, colour, _ = members
    export = tmp_path / "export"
    shutil.copytree(exported, export)
    member = sorted(export.glob("member-0-*"))[0] / "grader.json"
    member.write_text(member.read_text(encoding="utf-8") + " ", encoding="utf-8")
    refused = run("predict", export, members[0] / "dev", "--out", tmp_path / "x.csv")
    assert_clean_failure(refused, "SHA-256 differs")
