"""adapt keeps the parent only where it helps: with labels for 20 photos or more it
measures the adapted run against the family's recipe trained from scratch on the new
photos' parts and writes the better (--keep best|adapted|scratch); the adapted run's
familiarity counts the new photos as familiar and still flags what is like neither."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from .service_helpers import train_tiny
from .test_cli import assert_clean_failure, run

RF = ["--model", "rf", "--cv", "2", "--set", "features.size=16", "--set", "n_estimators=12"]


@pytest.fixture(scope="module")
def orchard(tmp_path_factory):
    """A tiny forest run, and 36 labelled photos of another orchard (other fruits, a camera
    that swaps red and blue: the parent finds them unfamiliar) with their fruit groups."""
    from mangograde.data.synth import synthesize

    base = tmp_path_factory.mktemp("keep")
    root = synthesize(base / "s", n=48, size=48, seed=3)
    parent = train_tiny(root, base / "forest", *RF)
    other = synthesize(base / "o", n=36, size=48, seed=11)
    new = base / "new"
    new.mkdir()
    rows = []
    for part in ("train", "dev"):
        for row in (other / f"{part}.csv").read_text().splitlines()[1:]:
            name = row.split(",")[0]
            pixels = np.asarray(Image.open(other / part / name).convert("RGB"))
            Image.fromarray(np.ascontiguousarray(pixels[..., ::-1])).save(new / name)
            rows.append(row)
    labels = base / "new.csv"
    labels.write_text("image_id,label\n" + "\n".join(rows) + "\n")
    return parent, new, labels, other / "groups.csv"


def _metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def _config(run_dir):
    return yaml.safe_load((run_dir / "config.yaml").read_text())


def test_with_20_labels_adapt_measures_and_keeps_the_better_run(orchard, tmp_path):
    parent, new, labels, groups = orchard
    out = tmp_path / "best"
    done = run("adapt", parent, new, "--labels", labels, "--groups", groups, "--out", out,
               "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    arms = _metrics(out)["adapt"]
    kept = arms["keep"]["kept"]
    other = "scratch" if kept == "adapted" else "adapted"
    assert arms["parts"] == 5 and arms["keep"]["rule"] == "best"  # measured without --cv
    assert arms[kept]["accuracy"] >= arms["scratch"]["accuracy"]  # never worse than scratch
    assert arms["keep"]["by"] == pytest.approx(arms[kept]["accuracy"] - arms[other]["accuracy"])
    words = " ".join(done.output.split())
    assert "Kept the " in words and "on the held-out parts against" in words
    assert (
        _config(out)["adapt"]["kept"] == kept and _config(out)["adapt"]["parent_name"] == "forest"
    )
    graded = run("predict", out, new, "--out", tmp_path / "p.csv", "--quiet")
    assert graded.exit_code == 0, graded.output


def test_a_kept_scratch_run_is_a_proper_run_naming_its_parent(orchard, tmp_path):
    from mangograde.runs import open_predictor, open_run

    parent, new, labels, groups = orchard
    out = tmp_path / "scratch"
    done = run("adapt", parent, new, "--labels", labels, "--groups", groups, "--cv", "3",
               "--keep", "scratch", "--out", out, "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Run trained from scratch written to" in " ".join(done.output.split())
    written = open_run(out)
    assert written.parent_path is not None and written.parent_path.name == "forest"
    assert [p.name for p in written.bundle_folders()] == ["fold-0", "fold-1", "fold-2"]
    metrics = _metrics(out)
    assert metrics["adapt"]["keep"] == pytest.approx(
        {"rule": "scratch", "kept": "scratch", "why": "--keep scratch",
         "by": metrics["adapt"]["scratch"]["accuracy"] - metrics["adapt"]["adapted"]["accuracy"]}
    )  # fmt: skip
    assert metrics["accuracy"] == pytest.approx(metrics["adapt"]["scratch"]["accuracy"])
    assert open_predictor(out).familiarity is not None  # fit as a trained run's
    held = written.held_out
    assert held is not None and len(held.image_ids) == metrics["adapt"]["photos"]
    scored = run("evaluate", out, new, "--labels", labels, "--quiet")
    assert scored.exit_code == 0, scored.output


def test_ties_keep_the_adapted_run_and_below_20_labels_nothing_is_chosen():
    from mangograde.workflows.adapt import choose_run

    def measured(adapted, scratch):
        return {"adapted": {"accuracy": adapted[0], "mae": adapted[1]},
                "scratch": {"accuracy": scratch[0], "mae": scratch[1]}}  # fmt: skip

    assert choose_run("best", measured((0.8, 0.2), (0.8, 0.2)), 30)[0] == "adapted"
    assert choose_run("best", measured((0.8, 0.2), (0.8, 0.18)), 30)[0] == "scratch"
    assert choose_run("best", measured((0.8, 0.2), (0.7, 0.1)), 30)[0] == "adapted"
    kept, said = choose_run("best", measured((0.7, 0.2), (0.8, 0.2)), 94)
    assert kept == "scratch" and "(+0.100)" in said  # type: ignore[operator]
    assert choose_run("best", measured((0.7, 0.2), (0.8, 0.2)), 19)[0] == "adapted"
    assert choose_run("adapted", measured((0.7, 0.2), (0.8, 0.2)), 94)[0] == "adapted"
    assert choose_run("best", None, 94) == ("adapted", None)


def test_the_adapted_familiarity_counts_the_new_photos_and_flags_other_things(orchard, tmp_path):
    from mangograde.graders import grade_batch
    from mangograde.images import load_images
    from mangograde.runs import open_predictor

    parent, new, labels, groups = orchard
    out = tmp_path / "adapted"
    done = run("adapt", parent, new, "--labels", labels, "--groups", groups, "--cv", "4",
               "--keep", "adapted", "--out", out, "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    measured = _metrics(out)["adapt"]["familiar"]
    assert measured["parent_flags_new_photos"] > 0.5  # the parent finds them unfamiliar
    assert measured["adapted_held_out_new_flagged"] <= 0.1  # adapted on the other parts
    assert "Familiarity adapted:" in " ".join(done.output.split())
    record = _metrics(out)["familiar"]
    assert record["threshold"] >= record["threshold_parent_photos"] and record["n_parts"] == 4
    things = tmp_path / "things"
    things.mkdir()
    for i in range(6):  # green noise: like neither the parent's photos nor the new ones
        noise = np.random.default_rng(i).integers(0, 255, (48, 48, 3)) * [0.2, 1.0, 0.3]
        Image.fromarray(noise.astype(np.uint8)).save(things / f"t{i}.png")
    predictor = open_predictor(out)
    images = load_images(sorted(things.iterdir()), predictor.geometry).arrays
    assert grade_batch(predictor, images).unfamiliar.all()  # type: ignore[union-attr]


def test_bad_keep_input_is_refused_with_what_to_do(orchard, tmp_path):
    parent, new, labels, groups = orchard
    bad = run("adapt", parent, new, "--labels", labels, "--keep", "newest", "--out", tmp_path / "a")
    assert_clean_failure(bad, "--keep must be best, adapted or scratch")
    few = tmp_path / "few.csv"
    lines = labels.read_text().splitlines()
    picked = [[r for r in lines[1:] if r.endswith(g)][:4] for g in (",A", ",B", ",C")]
    few.write_text("\n".join([lines[0], *sum(picked, [])]) + "\n")
    assert_clean_failure(run("adapt", parent, new, "--labels", few, "--keep", "scratch",
                             "--out", tmp_path / "b"), "needs labels for at least 20 photos",
                         "12 photos are labelled", "--keep adapted")  # fmt: skip
    blind = run("adapt", parent, new, "--unlabelled", "--keep", "scratch", "--out", tmp_path / "u")
    assert_clean_failure(blind, "--keep scratch measures against grades: it needs --labels")
    unmeasured = run("adapt", parent, new, "--labels", few, "--out", tmp_path / "c", "--quiet")
    assert unmeasured.exit_code == 0, unmeasured.output
    assert "needs labels for at least 20 photos (12 given)" in " ".join(unmeasured.output.split())
    assert _config(tmp_path / "c")["adapt"]["kept"] == "adapted"
    assert not (tmp_path / "c" / "predictions.csv").exists()  # nothing measured


def test_the_refit_on_features_made_once_is_refit_with(orchard, tmp_path):
    """The classical refit through the family's fit_fold on the pool's features grades as
    the registry's refit_with does on the photos."""
    from mangograde.data import load_dataset
    from mangograde.images import load_images
    from mangograde.models.registry import Adaptation, refit_with
    from mangograde.runs import open_run
    from mangograde.workflows.adapt_pool import parent_photos

    parent, new, labels, groups = orchard
    out = tmp_path / "adapted"
    done = run("adapt", parent, new, "--labels", labels, "--keep", "adapted", "--out", out,
               "--set", "adapt.weight=3", "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    before, after = open_run(parent), open_run(out)
    held, old = parent_photos(before, before.geometry(), None, False)  # type: ignore[misc]
    dataset = load_dataset(new, labels)  # in the order adapt reads them
    photos = load_images(list(dataset.paths), before.geometry()).arrays
    codes = np.asarray(dataset.labels)
    for bundle, adapted in zip(before.bundles(), after.bundles(), strict=True):
        trained = held.folds != bundle.manifest["fold"]
        task = Adaptation(photos, codes, {"weight": 3}, old[trained], held.true[trained])
        np.testing.assert_allclose(refit_with(bundle.model, task).predict_proba(photos),
                                   adapted.model.predict_proba(photos))  # fmt: skip


def test_counted_photos_fit_the_model_of_the_photos_repeated():
    from mangograde.evaluation.familiarity import FamiliarityModel
    from mangograde.runs.familiar_adapted import counted_fit

    rng = np.random.default_rng(0)
    for n, d in ((40, 12), (25, 300)):  # more photos than features, and fewer
        photos, counts = rng.normal(size=(n, d)) + 2.0, rng.integers(1, 6, n)
        other = rng.normal(size=(30, d)) + 2.0
        repeated = FamiliarityModel.fit(np.repeat(photos, counts, axis=0))
        np.testing.assert_allclose(counted_fit(photos, counts).score(other),
                                   repeated.score(other), rtol=1e-8)  # fmt: skip


def test_one_fold_adapted_alone_is_a_run_that_grades(orchard, tmp_path):
    parent, new, labels, groups = orchard
    out = tmp_path / "one"
    done = run("adapt", parent, new, "--labels", labels, "--fold", "1", "--keep", "adapted",
               "--out", out, "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert _config(out)["split"]["only_fold"] == 1
    graded = run("predict", out, new, "--out", tmp_path / "p.csv", "--quiet")
    assert graded.exit_code == 0, graded.output
