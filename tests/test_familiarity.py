"""The familiarity model: a photo's distance from the training photos in the model's own
features, and the threshold set on photos it never saw."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.evaluation.familiarity import (
    METHOD,
    FamiliarityModel,
    auroc,
    drift_pvalue,
    threshold_for,
)
from mangograde.evaluation.grader_checks import NO_FAMILIARITY


def _features(n: int, d: int = 20, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(1.0, 2.0, d)  # a common direction, as real features have
    return base + rng.normal(size=(n, d)) * 0.3 + shift * rng.normal(size=d)


def test_other_photos_score_far_and_the_threshold_flags_about_the_quantile():
    train, held, other = _features(300), _features(2000, seed=1), _features(200, shift=1.5, seed=2)
    model = FamiliarityModel.fit(train)
    model = model.with_threshold(model.score(_features(500, seed=3)), 0.99)
    held_scores, other_scores = model.score(held), model.score(other)
    assert auroc(held_scores, other_scores) > 0.99
    assert 0.003 < model.flags(held).mean() < 0.03
    assert model.flags(other).mean() > 0.9
    assert auroc(held_scores, model.score(_features(200, seed=4))) == pytest.approx(0.5, abs=0.08)


def test_scores_ignore_a_cameras_gain_and_flag_broken_features():
    train = _features(100)
    model = FamiliarityModel.fit(train)
    photo = _features(3, seed=5)
    np.testing.assert_allclose(model.score(photo * 3.0), model.score(photo))
    photo[1, 4] = np.nan
    scores = model.score(photo)
    assert np.isinf(scores[1]) and np.isfinite(scores[[0, 2]]).all()
    with pytest.raises(SettingsError, match="no threshold"):
        model.flags(photo)
    assert model.with_threshold(scores, 0.99).flags(photo)[1]


def test_many_more_features_than_photos_are_projected_first():
    train = _features(40, d=5000)
    model = FamiliarityModel.fit(train)
    assert model.components.shape == (39, 5000) and model.precision.shape == (39, 39)
    assert auroc(model.score(_features(50, d=5000, seed=1)),
                 model.score(_features(50, d=5000, shift=1.0, seed=2))) > 0.95  # fmt: skip


def test_the_distance_is_ledoit_wolfs_mahalanobis_in_the_whole_feature_space():
    from sklearn.covariance import LedoitWolf, ledoit_wolf_shrinkage

    from mangograde.evaluation.familiarity import ledoit_wolf_shrinkage as from_gram

    for n, d in [(100, 30), (40, 200)]:  # fewer features than photos, and more
        train, photos = _features(n, d=d), _features(7, d=d, shift=0.5, seed=3)
        unit = train / np.linalg.norm(train, axis=1, keepdims=True)
        assert from_gram(unit - unit.mean(axis=0)) == pytest.approx(
            ledoit_wolf_shrinkage(unit - unit.mean(axis=0), assume_centered=True)
        )
        model = FamiliarityModel.fit(train, max_components=1000)  # every axis kept
        expected = (
            LedoitWolf()
            .fit(unit)
            .mahalanobis(photos / np.linalg.norm(photos, axis=1, keepdims=True))
        )
        np.testing.assert_allclose(model.score(photos) ** 2, expected, rtol=1e-6)  # fmt: skip


def test_photos_off_the_training_axes_are_unfamiliar():
    """What another camera looks like: the same spread along the training photos' main
    axes, every photo moved in a direction off them. Scoring on the axes alone misses it."""
    rng = np.random.default_rng(0)
    axes, away = rng.normal(size=(5, 400)), rng.normal(size=400)

    def photos(n: int, moved: float = 0.0) -> np.ndarray:
        return 10 + rng.normal(size=(n, 5)) @ axes + 0.1 * rng.normal(size=(n, 400)) + moved * away

    train, held, other = photos(300), photos(300), photos(100, moved=1.0)
    model = FamiliarityModel.fit(train, max_components=5)
    assert auroc(model.score(held), model.score(other)) > 0.99
    on_axes_only = FamiliarityModel(model.center, model.components, model.precision)
    assert auroc(on_axes_only.score(held), on_axes_only.score(other)) < 0.8


def test_stored_as_plain_arrays_and_read_back():
    model = FamiliarityModel.fit(_features(60)).with_threshold(np.arange(100.0), 0.9)
    again = FamiliarityModel.from_arrays(model.arrays("fold0_"), "fold0_")
    assert again.threshold == pytest.approx(89.1)
    photo = _features(5, seed=9)
    np.testing.assert_array_equal(again.score(photo), model.score(photo))
    assert (
        FamiliarityModel.from_arrays(FamiliarityModel.fit(_features(9)).arrays()).threshold is None
    )
    first_release = model.arrays()
    del first_release["residual_precision"]  # runs of the first release: axes alone
    assert FamiliarityModel.from_arrays(first_release).residual_precision == 0.0
    broken = model.arrays()
    broken["residual_precision"] = np.array(np.nan)
    with pytest.raises(SettingsError, match="residual precision nan"):
        FamiliarityModel.from_arrays(broken)
    broken = model.arrays()
    broken["precision"] = broken["precision"][:2]
    with pytest.raises(SettingsError, match="do not fit together"):
        FamiliarityModel.from_arrays(broken)


def test_a_batch_that_drifted_is_told_from_one_that_did_not():
    model = FamiliarityModel.fit(_features(300))
    reference = model.score(_features(300, seed=1))
    alarms = [drift_pvalue([model.score(_features(30, seed=s))], [reference]) < 0.01
              for s in range(10, 50)]  # fmt: skip
    assert np.mean(alarms) <= 0.05
    moved = [drift_pvalue([model.score(_features(30, shift=0.3, seed=s))], [reference]) < 0.01
             for s in range(10, 50)]  # fmt: skip
    assert np.mean(moved) >= 0.95
    two = drift_pvalue([reference[:30], reference[30:60]], [reference, reference])
    assert 0 < two <= 1
    assert drift_pvalue([reference[:1]], [reference]) is None  # a window of one photo
    assert drift_pvalue([reference[:5]], [None]) is None  # an old run: no reference
    same = np.full(30, reference[0])  # thirty identical photos
    assert drift_pvalue([same], [reference]) is not None


def test_bad_input_is_named():
    with pytest.raises(SettingsError, match="at least 3 training photos"):
        FamiliarityModel.fit(_features(2))
    with pytest.raises(SettingsError, match="familiar.quantile must be from 0.5"):
        threshold_for(np.arange(10.0), 1.5)
    with pytest.raises(SettingsError, match="No finite"):
        threshold_for(np.array([np.inf, np.nan]), 0.99)


# -- a run learns what its training photos look like -------------------------------------


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("familiar") / "s", n=36, size=48, seed=2)


def _noise(n: int, side: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


@pytest.mark.parametrize("recipe", ["colour", "cnn"])
def test_every_fold_stores_a_familiarity_model_and_new_photos_are_scored(synth, tmp_path, recipe):
    import json

    from mangograde.images import load_images
    from mangograde.runs import open_predictor, open_run

    from .service_helpers import TINY_CNN, train_tiny

    args = TINY_CNN if recipe == "cnn" else ["--preset", "colour-texture", "--cv", "3",
                                             "--set", "n_estimators=20"]  # fmt: skip
    run = train_tiny(synth, tmp_path / recipe, *args, "--set", "familiar.quantile=0.9")
    record = json.loads((run / "metrics.json").read_text())["familiar"]
    assert record["method"] == METHOD and record["quantile"] == 0.9
    assert 0.05 <= record["held_out_flagged"] <= 0.2
    assert all((f / "familiarity.npz").is_file() for f in (run / "model").iterdir())
    predictor = open_predictor(run)
    assert predictor.familiarity.threshold == record["threshold"]
    # the threshold was set on each fold model's own held-out photos
    held = open_run(run).held_out
    scores = np.zeros(len(held.image_ids))
    for k, bundle in enumerate(predictor.bundles):
        mine = np.flatnonzero(held.folds == k)
        photos = load_images([synth / "train" / held.image_ids[i] for i in mine],
                             predictor.geometry).arrays  # fmt: skip
        model = FamiliarityModel.from_arrays(bundle.familiarity)
        scores[mine] = model.score(bundle.model.embed(photos))
    assert np.mean(scores > record["threshold"]) == pytest.approx(record["held_out_flagged"])
    assert record["threshold"] == pytest.approx(np.quantile(scores, 0.9))
    images = load_images(sorted((synth / "dev").iterdir())[:6], predictor.geometry).arrays
    proba, codes, per_model = predictor.grade_and_score(images)
    own = per_model.mean(axis=0)
    assert own.shape == (6,) and np.isfinite(own).all()
    # one pass gives what grading and embedding apart give
    np.testing.assert_allclose(proba, predictor.grade(images)[0], atol=1e-6)
    apart = [FamiliarityModel.from_arrays(b.familiarity).score(b.model.embed(images))
             for b in predictor.bundles]  # fmt: skip
    np.testing.assert_allclose(per_model, np.stack(apart), rtol=1e-6)
    flipped = predictor.grade_and_score(images[..., ::-1])[2]
    assert np.isfinite(flipped).all()
    assert all(len(f.reference) == len(held.folds[held.folds == k])
               for k, f in enumerate(predictor.familiarity.models))  # fmt: skip
    assert predictor.drift(per_model) > 0
    if recipe == "colour":  # a tiny two-epoch CNN's features tell little apart
        other = predictor.grade_and_score(_noise(6, images.shape[1]))[2]  # not a fruit at all
        assert other.mean(axis=0).min() > np.max(own) and predictor.unfamiliar(other).all()


def test_a_family_without_features_and_an_old_run_say_so(synth, tmp_path):
    import json
    from pathlib import Path

    from mangograde.runs import open_predictor

    from .service_helpers import train_tiny

    stack = train_tiny(synth, tmp_path / "stack", "--model", "stack", "--cv", "2", "--set",
                       "members=[colour-texture, rf-study]", "--set", "inner_cv=2")  # fmt: skip
    record = json.loads((stack / "metrics.json").read_text())["familiar"]
    assert record["method"] is None and "--model stack gives no features" in record["note"]
    assert open_predictor(stack).familiarity is None
    old = Path(__file__).parent / "fixtures" / "runs-v0.1" / "svm"
    predictor = open_predictor(old)
    assert predictor.familiarity is None and predictor.grade_and_score(_noise(2, 32))[2] is None
    assert NO_FAMILIARITY in predictor.notices


def test_data_familiar_checks_photos_against_a_run_before_the_line_starts(synth, tmp_path):
    import json
    from pathlib import Path

    from PIL import Image

    from .service_helpers import train_tiny
    from .test_cli import assert_clean_failure, run
    from .test_cli_models import read_csv

    colour = train_tiny(synth, tmp_path / "colour", "--preset", "colour-texture", "--cv", "3",
                        "--set", "n_estimators=20")  # fmt: skip
    odd = tmp_path / "odd"
    odd.mkdir()
    for i, array in enumerate(_noise(5, 48)):
        Image.fromarray(array).save(odd / f"noise_{i}.png")
    labels = tmp_path / "odd.csv"
    labels.write_text("image_id,label\n" + "".join(f"noise_{i}.png,A\n" for i in range(5)))
    result = run("data", "familiar", colour, odd, "--labels", labels, "--out", tmp_path / "f")
    assert result.exit_code == 0, result.output
    assert "Unfamiliar to the run: 5 photos (100%)" in result.output
    assert "AUROC (held-out against these) 1.000" in result.output
    said = " ".join(result.output.split())  # the plain meaning before the p-value
    assert said.index("very unlikely to come from the run's camera") < said.index("drift p =")
    assert "accuracy unfamiliar" in result.output
    rows = read_csv(tmp_path / "f" / "familiarity.csv")
    assert [r["unfamiliar"] for r in rows] == ["yes"] * 5
    assert (tmp_path / "f" / "familiarity.png").read_bytes()[:4] == b"\x89PNG"
    own = run("data", "familiar", colour, synth / "dev", "--out", tmp_path / "g")
    assert own.exit_code == 0 and "not like its training photos" not in own.output
    target = tmp_path / "ev.json"
    graded = run("evaluate", colour, odd, "--labels", labels, "--out", target)
    assert graded.exit_code == 0, graded.output
    record = json.loads(target.read_text())["familiar"]
    assert record["n_unfamiliar"] == 5 and record["drift_p"] < 0.01
    assert record["accuracy_familiar"] is None and record["accuracy_unfamiliar"] is not None
    assert "Unfamiliar to the run: 5 photos (100%)" in graded.output
    old = Path(__file__).parent / "fixtures" / "runs-v0.1" / "svm"
    refused = run("data", "familiar", old, odd, "--out", tmp_path / "h")
    assert_clean_failure(refused, "has no familiarity model", "train it again")


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_serve_scores_each_photo_and_says_when_the_line_drifts(synth, tmp_path):
    pytest.importorskip("fastapi")
    from pathlib import Path

    from fastapi.testclient import TestClient

    from mangograde.service import ServeOptions, create_app

    from .service_helpers import train_tiny
    from .test_cli import assert_clean_failure, run

    colour = train_tiny(synth, tmp_path / "colour", "--preset", "colour-texture", "--cv", "3",
                        "--set", "n_estimators=20",
                        "--set", "familiar.not_a_fruit=false")  # fmt: skip
    own = [("files", (p.name, p.read_bytes(), "image/jpeg"))
           for p in sorted((synth / "dev").iterdir())[:4]]  # fmt: skip
    noise = [("files", (f"n{i}.png", _png(a), "image/png")) for i, a in enumerate(_noise(4, 48))]
    with TestClient(create_app(ServeOptions(run=colour, drift_window=4))) as client:
        calm = client.post("/v1/grade", files=own).json()
        assert all(isinstance(r["familiarity"], float) for r in calm["results"])
        assert calm["drift"]["window"] == 4 and calm["drift"]["photos_in_window"] == 4
        odd = client.post("/v1/grade", files=noise).json()
        assert all(r["unfamiliar"] for r in odd["results"])
        assert all(r["check"] and r["reason"] == "unfamiliar" for r in odd["results"])
        assert odd["drift"]["drifting"] and odd["drift"]["drift_p"] < 0.01
        assert client.get("/v1/model").json()["familiarity"]["drifting"] is True
        metrics = client.get("/metrics").text
        assert "mangograde_photos_unfamiliar_total 4.0" in metrics
        assert "mangograde_drift_p " in metrics
        fruit = client.post("/v1/grade", files=[own[0], noise[0]], data={"fruit": "f1"}).json()
        assert fruit["fruits"][0]["check"] and fruit["fruits"][0]["reason"] == "unfamiliar"
    with TestClient(create_app(ServeOptions(run=colour, familiar=False))) as client:
        body = client.post("/v1/grade", files=noise[:1]).json()
        assert "familiarity" not in body["results"][0] and "check" not in body["results"][0]
    old = Path(__file__).parent / "fixtures" / "runs-v0.1" / "svm"
    with TestClient(create_app(ServeOptions(run=old))) as client:
        body = client.post("/v1/grade", files=noise[:1]).json()
        assert "familiarity" not in body["results"][0] and "drift" not in body
        assert client.get("/v1/model").json()["familiarity"] is None
    assert_clean_failure(run("serve", colour, "--drift-window", "1"), "--drift-window must be")


def _odd_folder(root: Path, n: int = 3) -> Path:
    from PIL import Image

    root.mkdir()
    for i, array in enumerate(_noise(n, 48)):
        Image.fromarray(array).save(root / f"noise_{i}.png")
    return root


def test_predict_leaves_what_is_not_a_mango_to_check_apart_from_unsure_photos(synth, tmp_path):
    from .service_helpers import train_tiny
    from .test_cli import run
    from .test_cli_models import read_csv

    colour = train_tiny(synth, tmp_path / "colour", "--preset", "colour-texture", "--cv", "3",
                        "--set", "n_estimators=20")  # fmt: skip
    odd = _odd_folder(tmp_path / "odd")
    dev = sorted((synth / "dev").iterdir())[:6]
    result = run("predict", colour, *dev, odd, "--abstain", "0.99", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    rows = {r["image_id"]: r for r in read_csv(tmp_path / "p.csv")}
    assert list(next(iter(rows.values())))[-2:] == ["familiarity", "reason"]
    for i in range(3):
        assert rows[f"noise_{i}.png"]["label"] == "check"
        assert rows[f"noise_{i}.png"]["reason"] == "not-a-fruit"  # noise is no mango at all
    own = [rows[p.name] for p in dev]
    assert all(r["reason"] in ("", "unsure") for r in own)  # the run's own kind of photo
    assert any(r["reason"] == "unsure" for r in own)  # abstain 0.99 leaves some unsure
    assert all((r["label"] == "check") == bool(r["reason"]) for r in rows.values())
    assert max(float(r["familiarity"]) for r in own) < min(
        float(rows[f"noise_{i}.png"]["familiarity"]) for i in range(3))  # fmt: skip
    assert "Unfamiliar to the run: 3 photos (33%)" in result.output
    assert "set on only 28 held-out photos" in result.output  # a tiny run says so
    off = run("predict", colour, *dev, odd, "--familiar", "off", "--out", tmp_path / "q.csv")
    assert off.exit_code == 0, off.output
    rows = read_csv(tmp_path / "q.csv")
    assert "familiarity" not in rows[0]
    # the mangoes graded however far; what is not a mango still never graded
    assert all((r["label"] == "check") == r["image_id"].startswith("noise") for r in rows)
    assert {r["reason"] for r in rows} == {"", "not-a-fruit"}
    assert "Unfamiliar" not in off.output and "held-out photos" not in off.output
    # the competition's format holds grades only, and says that some were to check
    sub = run("predict", colour, odd, "--format", "submission", "--out", tmp_path / "s.csv")
    assert sub.exit_code == 0 and "holds grades only" in sub.output
    assert {r["label"] for r in read_csv(tmp_path / "s.csv")} <= {"A", "B", "C"}


def test_a_fruit_with_an_unfamiliar_photo_is_checked_for_it(synth, tmp_path):
    import shutil

    from .service_helpers import train_tiny
    from .test_cli import run
    from .test_cli_models import read_csv

    colour = train_tiny(synth, tmp_path / "colour", "--preset", "colour-texture", "--cv", "3",
                        "--set", "n_estimators=20",
                        "--set", "familiar.not_a_fruit=false")  # fmt: skip
    photos = tmp_path / "fruits"
    for fruit, names in (("good", sorted(os.listdir(synth / "dev"))[:2]), ("odd", None)):
        (photos / fruit).mkdir(parents=True)
        if names:
            for name in names:
                shutil.copy(synth / "dev" / name, photos / fruit / name)
    _odd_folder(tmp_path / "noise", 1)
    shutil.copy(tmp_path / "noise" / "noise_0.png", photos / "odd" / "noise_0.png")
    shutil.copy(synth / "dev" / sorted(os.listdir(synth / "dev"))[2], photos / "odd" / "x.jpg")
    result = run("predict", colour, photos, "--fruit-folders", "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    fruits = {r["fruit"]: r for r in read_csv(tmp_path / "fruits.csv")}
    assert fruits["odd"]["check"] == "yes" and fruits["odd"]["reason"] == "unfamiliar"
    assert fruits["good"]["reason"] in ("", "unsure")


def test_an_old_run_grades_without_the_flag_and_says_so_once(tmp_path):
    from .test_cli import run
    from .test_cli_models import read_csv

    old = Path(__file__).parent / "fixtures" / "runs-v0.1" / "svm"
    odd = _odd_folder(tmp_path / "odd")
    result = run("predict", old, odd, "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert result.output.count("no familiarity model") == 1
    assert all(r["label"] in ("A", "B", "C") for r in read_csv(tmp_path / "p.csv"))
    quiet = run("predict", old, odd, "--familiar", "off", "--out", tmp_path / "q.csv")
    assert quiet.exit_code == 0 and "no familiarity model" not in quiet.output
    bad = run("predict", old, odd, "--familiar", "maybe", "--out", tmp_path / "r.csv")
    assert bad.exit_code != 0 and "--familiar must be on or off" in bad.output
