"""Hostile inputs, as a careless or malicious user would bring them.

Every case builds its input here and asserts: a non-zero exit, one message naming the
file or value, no traceback, and no file changed outside the command's own outputs (the
checksums of the whole tmp tree before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mangograde.cli import app
from mangograde.runs.lock import RunLock

from .helpers import write_photo


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(root: Path) -> dict[str, str]:
    """Checksum of every file under ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def refused(result, *phrases: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1
    for phrase in phrases:
        assert phrase in result.output, result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Photos and two trained runs (svm and rf, 2 folds each)."""
    root = tmp_path_factory.mktemp("hostile")
    assert run("synth", root / "data", "--n", "40", "--size", "32").exit_code == 0
    data = [root / "data" / "train", "--labels", root / "data" / "train.csv"]
    for model, extra in (
        ("svm", ["--set", "features.size=16", "--set", "n_components=4"]),
        ("rf", ["--set", "n_estimators=4", "--set", "features.size=8"]),
    ):
        result = run("train", *data, "--model", model, "--cv", "2", *extra,
                     "--out", root / model, "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def here(world, tmp_path) -> Path:
    """A private copy of the world: each case may damage it."""
    copy = tmp_path / "w"
    shutil.copytree(world, copy)
    return copy


def unchanged(here: Path, before: dict[str, str], *outputs: str) -> None:
    after = tree(here)
    for name in outputs:
        after.pop(name, None)
    assert after == before


# 1. Never write over an input -----------------------------------------------------------
def test_evaluate_never_writes_over_its_labels(here):
    before = tree(here)
    labels = here / "data" / "dev.csv"
    result = run("evaluate", here / "svm", here / "data" / "dev", "--labels", labels,
                 "--out", here / "data" / "dev.json")  # fmt: skip
    refused(result, "dev.csv", "inputs")
    unchanged(here, before)


def test_outputs_refuse_existing_files_without_overwrite(here):
    (here / "mine.csv").write_text("precious", encoding="utf-8")
    before = tree(here)
    result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "mine.csv")
    refused(result, "mine.csv", "--overwrite")
    unchanged(here, before)
    again = run("predict", here / "svm", here / "data" / "dev", "--out", here / "mine.csv",
                "--overwrite")  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (here / "mine.csv").read_text(encoding="utf-8").startswith("image_id,label")


# 2. --overwrite clears only a marked run, only what it wrote -----------------------------
def test_overwrite_never_touches_a_foreign_project(here):
    foreign = here / "project"
    for name in ("config.yaml", "model/weights.bin", "checkpoints/step1.ckpt"):
        (foreign / name).parent.mkdir(parents=True, exist_ok=True)
        (foreign / name).write_text("theirs", encoding="utf-8")
    before = tree(here)
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "rf", "--set", "n_estimators=2", "--cv", "2",
                 "--out", foreign, "--overwrite")  # fmt: skip
    refused(result, str(foreign), "no run marked")
    unchanged(here, before)


def test_overwrite_keeps_what_the_run_did_not_write(here):
    (here / "rf" / "evaluations").mkdir()
    (here / "rf" / "evaluations" / "notes.txt").write_text("mine", encoding="utf-8")
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "rf", "--set", "n_estimators=3", "--set", "features.size=8",
                 "--cv", "2", "--out", here / "rf", "--overwrite")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (here / "rf" / "evaluations" / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert "n_estimators: 3" in (here / "rf" / "config.yaml").read_text(encoding="utf-8")
    assert sorted(p.name for p in here.iterdir() if p.name.startswith(".")) == []


# 3. One writer at a time; no mixed runs ---------------------------------------------------
def test_a_second_writer_fails_at_once_and_a_stale_lock_is_taken_over(here):
    out = here / "run"
    args = ["train", here / "data" / "train", "--labels", here / "data" / "train.csv",
            "--model", "rf", "--set", "n_estimators=2", "--set", "features.size=8",
            "--cv", "2", "--out", out]  # fmt: skip
    with RunLock(out):
        refused(run(*args), "is writing the run", f"pid {os.getpid()}")
    assert not out.exists()
    (here / ".run.lock").write_text('{"pid": 999999, "host": "gone", "started": 0}')
    result = run(*args)  # the lock of a dead process holds nothing
    assert result.exit_code == 0, result.output
    assert not (here / ".run.lock").exists()


def test_a_run_with_another_runs_bundle_is_refused(here):
    shutil.rmtree(here / "svm" / "model" / "fold-1")
    shutil.copytree(here / "rf" / "model" / "fold-1", here / "svm" / "model" / "fold-1")
    before = tree(here)
    result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, "fold-1", "not trained with")
    unchanged(here, before)
    (here / "svm" / "model" / "fold-2").mkdir()
    shutil.copytree(here / "svm" / "model" / "fold-0", here / "svm" / "model" / "fold-2" / "x")
    shutil.copy(
        here / "svm" / "model" / "fold-0" / "bundle.json", here / "svm" / "model" / "fold-2"
    )
    refused(run("predict", here / "svm", here / "data" / "dev", "--out", here / "p.csv"),
            "says 2 folds")  # fmt: skip


# 4. synth and predict never replace what they did not write --------------------------------
def test_synth_into_an_existing_dataset_is_refused(here):
    target = here / "theirs"
    target.mkdir()
    (target / "train.csv").write_text("image_id,label\nx.jpg,A\n", encoding="utf-8")
    before = tree(here)
    refused(run("synth", target, "--n", "12", "--size", "32"), "train.csv", "--overwrite")
    refused(run("synth", target, "--n", "12", "--size", "32", "--overwrite"), "not drawn")
    unchanged(here, before)


def test_predict_never_writes_into_a_run(here):
    before = tree(here)
    for name in ("config.yaml", "model/fold-0/model.json"):
        result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "svm" / name)
        refused(result, "inside the run folder")
    unchanged(here, before)


# 5. A full disk leaves nothing half-written -------------------------------------------------
@pytest.fixture
def full_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_named_and_leaves_no_partial_file(here, full_disk):
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "svm", "--cv", "2", "--set", "features.size=32",
                 "--set", "n_components=16", "--out", full_disk / "run")  # fmt: skip
    refused(result, "No space left on", str(full_disk))
    assert list(full_disk.iterdir()) == []
    filler = full_disk / "filler"
    with filler.open("wb", buffering=0) as handle, pytest.raises(OSError):
        while True:
            handle.write(b"\0" * 4096)
    result = run("predict", here / "svm", here / "data" / "dev", "--out", full_disk / "p.csv")
    refused(result, "No space left on", "p.csv")
    assert [p.name for p in full_disk.iterdir()] == ["filler"]


# 6-7. Bundles are validated before use --------------------------------------------------------
def _tamper(bundle: Path, change) -> None:
    """Change a bundle's arrays or tree and recompute its checksums, as an attacker would."""
    manifest = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))
    change(bundle)
    for name in ("model.json", "arrays.npz"):
        digest = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
        manifest["files"][name] = digest
    (bundle / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")


def _forest_arrays(bundle: Path, edit) -> None:
    tree_json = json.loads((bundle / "model.json").read_text(encoding="utf-8"))
    with np.load(bundle / "arrays.npz") as stored:
        arrays = {k: stored[k] for k in stored.files}

    def find(node, name):
        if isinstance(node, dict):
            if "state" in node and node.get("object", "").endswith("GroupForestClassifier"):
                for key, value in node["state"]["dict"]:
                    if key == name:
                        return value["array"]
            for value in node.values():
                found = find(value, name)
                if found:
                    return found
        if isinstance(node, list):
            for value in node:
                found = find(value, name)
                if found:
                    return found
        return None

    edit(arrays, lambda name: find(tree_json, name))
    np.savez(bundle / "arrays.npz", **arrays)


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("a cycle", lambda a, key: a[key("tree_left_")].__setitem__(0, 0)),
        ("outside its tree", lambda a, key: a[key("tree_right_")].__setitem__(0, 10**6)),
        ("feature beyond", lambda a, key: a[key("tree_feature_")].__setitem__(0, 10**6)),
        ("must be finite", lambda a, key: a[key("tree_proba_")].__setitem__((0, 0), np.nan)),
        ("offsets", lambda a, key: a[key("tree_offsets_")].__setitem__(-1, 3)),
    ],
)
def test_a_tampered_forest_is_refused_before_it_runs(here, what, edit):
    bundle = here / "rf" / "model" / "fold-0"
    _tamper(bundle, lambda b: _forest_arrays(b, edit))
    before = tree(here)
    result = run("predict", here / "rf", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, "fold-0", "malformed", what)
    unchanged(here, before)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: (b / "model.json").write_text("[" * 100_000 + "]" * 100_000),
        lambda b: (b / "arrays.npz").write_bytes(b"PK\x03\x04 not a zip"),
        lambda b: (b / "model.json").write_text('{"format": "mangograde-state"}'),
        lambda b: (b / "model.json").write_text(
            '{"format": "mangograde-state", "root": {"array": "nope"}}'
        ),
    ],
)
def test_a_malformed_model_file_is_one_bundle_error(here, damage):
    bundle = here / "svm" / "model" / "fold-0"
    _tamper(bundle, damage)
    before = tree(here)
    result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, "model.json")
    unchanged(here, before)


def test_a_model_whose_arrays_do_not_fit_it_is_refused(here):
    bundle = here / "svm" / "model" / "fold-0"

    def shrink(b: Path) -> None:
        with np.load(b / "arrays.npz") as stored:
            arrays = {k: stored[k][..., :2] if stored[k].ndim == 2 else stored[k] for k in stored}
        np.savez(b / "arrays.npz", **arrays)

    _tamper(bundle, shrink)
    before = tree(here)
    result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, "fold-0")
    unchanged(here, before)


# 8. Settings are checked before anything is written ---------------------------------------------
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--model", "svm", "--set", "C=-1"], "params.C"),
        (["--model", "svm", "--set", "gamma=banana"], "params.gamma"),
        (["--model", "svm", "--set", "n_components=0"], "params.n_components"),
        (["--model", "svm", "--set", "kernel=evil"], "params.kernel"),
        (["--model", "rf", "--set", "n_estimators=0"], "params.n_estimators"),
        (["--model", "rf", "--set", "max_features=sqrtx"], "params.max_features"),
        (["--model", "cnn", "--set", "threads=-3"], "threads"),
        (["--model", "svm", "--seed", "-1"], "seed"),
        (["--model", "svm", "--seed", str(2**32)], "seed"),
        (["--model", "cnn", "--folds", "0"], "--folds"),
        (["--model", "cnn", "--folds", "-2"], "--folds"),
        (["--model", "svm", "--folds", "3"], "--folds"),
    ],
)
def test_bad_settings_write_nothing_and_a_retry_is_not_refused(here, args, named):
    before = tree(here)
    out = here / "new-run"
    base = ["train", here / "data" / "train", "--labels", here / "data" / "train.csv"]
    refused(run(*base, *args, "--out", out), named)
    assert not out.exists()
    unchanged(here, before)


def test_cuda_without_a_gpu_is_refused_up_front(here):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "cnn", "--set", "device=cuda", "--out", here / "x")  # fmt: skip
    refused(result, "device 'cuda'")


# 9. Paths and inputs -----------------------------------------------------------------------------
def test_out_paths_of_the_wrong_kind_are_named(here):
    (here / "afile").write_text("x", encoding="utf-8")
    base = ["train", here / "data" / "train", "--labels", here / "data" / "train.csv",
            "--model", "svm"]  # fmt: skip
    refused(run(*base, "--out", here / "afile"), "is a file")
    refused(run(*base, "--out", here / "afile" / "run"), "is a file, not a folder")
    refused(run(*base, "--out", "/proc/mangograde-run"), "Cannot write /proc")
    predict = ["predict", here / "svm", here / "data" / "dev"]
    refused(run(*predict, "--out", here / "data"), "is a folder")


def test_predict_names_every_unusable_input_and_counts_a_photo_once(here):
    for name in ("notes.txt", "sheet.csv"):
        (here / name).write_text("x", encoding="utf-8")
    result = run("predict", here / "svm", here / "notes.txt", here / "sheet.csv",
                 here / "missing.jpg", "--out", here / "p.csv")  # fmt: skip
    refused(result, "notes.txt", "sheet.csv", "missing.jpg does not exist")
    dev = here / "data" / "dev"
    one = sorted(dev.glob("*.jpg"))[0]
    result = run("predict", here / "svm", dev, dev, one, "--out", here / "p.csv")
    assert result.exit_code == 0, result.output
    ids = [line.split(",")[0] for line in (here / "p.csv").read_text().splitlines()[1:]]
    assert len(ids) == len(set(ids)) == len(list(dev.glob("*.jpg")))


def test_a_csv_field_beyond_the_csv_limit_is_named(here):
    labels = here / "huge.csv"
    labels.write_text('image_id,label\n"' + "x" * 200_000 + "\n", encoding="utf-8")
    result = run("train", here / "data" / "train", "--labels", labels, "--model", "svm",
                 "--out", here / "r")  # fmt: skip
    refused(result, "huge.csv", "line")
    assert not (here / "r").exists()


def test_no_skip_bad_advice_when_it_is_already_on(here):
    broken = here / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    result = run("predict", here / "svm", broken, "--skip-bad", "--out", here / "p.csv")
    refused(result, "a.jpg", "Nothing to grade")
    assert "pass --skip-bad" not in result.output


# 10. Photos too large to decode safely ---------------------------------------------------
def test_a_photo_beyond_max_pixels_is_refused_and_named(here):
    big = here / "big"
    Image.new("RGB", (400, 300), (200, 120, 40)).save(big.with_suffix(".png"))
    write_photo(here / "small.png", seed=1, size=(40, 30))
    result = run("predict", here / "svm", big.with_suffix(".png"), here / "small.png",
                 "--max-pixels", "100000", "--out", here / "p.csv")  # fmt: skip
    refused(result, "big.png", "400 x 300", "--max-pixels")
    result = run("predict", here / "svm", big.with_suffix(".png"), here / "small.png",
                 "--max-pixels", "100000", "--skip-bad", "--out", here / "p.csv")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "big.png" in result.output and "small.png" in (here / "p.csv").read_text()


# Third round (issue 29) ----------------------------------------------------------------------
def test_an_output_is_never_written_inside_an_input_folder(here):
    before = tree(here)
    dev, train = here / "data" / "dev", here / "data" / "train"
    photo = sorted(dev.glob("*.jpg"))[0]
    result = run("predict", here / "svm", dev, "--out", photo, "--overwrite")
    refused(result, "inside", "a folder of photos this command reads")
    result = run("predict", here / "svm", dev, "--out", dev / "new.csv")
    refused(result, "never written among its inputs")
    a_photo = sorted(train.glob("*.jpg"))[0]
    result = run("tsne", train, "--labels", here / "data" / "train.csv", "--out", a_photo,
                 "--overwrite")  # fmt: skip
    refused(result, "a folder of photos this command reads")
    result = run("evaluate", here / "rf", dev, "--labels", here / "data" / "dev.csv",
                 "--out", dev / "e.json")  # fmt: skip
    refused(result, "a folder of photos this command reads")
    result = run("train", train, "--labels", here / "data" / "train.csv", "--model", "rf",
                 "--cv", "2", "--out", train / "run")  # fmt: skip
    refused(result, "would be read as photos next time")
    unchanged(here, before)


def test_overwrite_replaces_only_the_files_a_run_or_a_drawing_wrote(here):
    mine = here / "rf" / "model" / "my-notes.txt"
    mine.write_text("mine", encoding="utf-8")
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "rf", "--set", "n_estimators=3", "--set", "features.size=8",
                 "--cv", "2", "--out", here / "rf", "--overwrite")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert mine.read_text(encoding="utf-8") == "mine"
    assert "n_estimators: 3" in (here / "rf" / "config.yaml").read_text(encoding="utf-8")
    # synth: real photos beside a copied marker are not replaced, nor a drawn photo changed
    drawn = here / "drawn"
    assert run("synth", drawn, "--n", "12", "--size", "32").exit_code == 0
    real = here / "real"
    (real / "train").mkdir(parents=True)
    shutil.copy(drawn / "SYNTHETIC.txt", real / "SYNTHETIC.txt")
    write_photo(real / "train" / "mango_00000.jpg", seed=5)
    before = tree(here)
    refused(run("synth", real, "--n", "12", "--size", "32", "--overwrite"),
            "did not draw", "train/mango_00000.jpg")  # fmt: skip
    changed = sorted((drawn / "train").glob("*.jpg"))[0]
    write_photo(changed, seed=6)
    before = tree(here)
    refused(run("synth", drawn, "--n", "12", "--size", "32", "--overwrite"), changed.name)
    unchanged(here, before)
    write_photo(drawn / "train" / "extra.jpg", seed=7)
    refused(run("synth", drawn, "--n", "12", "--size", "32", "--overwrite"), "extra.jpg")
    again = here / "again"
    assert run("synth", again, "--n", "12", "--size", "32").exit_code == 0
    assert run("synth", again, "--n", "12", "--size", "32", "--seed", "3", "--overwrite")\
        .exit_code == 0  # fmt: skip


def test_the_cache_deletes_only_its_own_files(here, tmp_path):
    cache = tmp_path / "cache"
    assert run("data", "prepare", here / "data" / "dev", "--size", "16", "--cache-dir", cache)\
        .exit_code == 0  # fmt: skip
    theirs = [cache / "mine.mgc", cache / "packs" / "notes.mgp", cache / "ab" / "x.mgc",
              cache / "packs" / "list.idx", cache / "packs" / ("0" * 64 + ".mgp")]  # fmt: skip
    for file in theirs:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_bytes(b"not the cache's")
    shown = run("data", "cache", "--cache-dir", cache)
    photos = len(list((here / "data" / "dev").glob("*.jpg")))
    assert f"{photos} decoded photos (1 dataset packs)" in shown.output, shown.output
    cleared = run("data", "cache", "--clear", "--cache-dir", cache)
    assert cleared.exit_code == 0, cleared.output
    assert all(f.read_bytes() == b"not the cache's" for f in theirs)
    assert sorted(f for f in cache.rglob("*") if f.is_file()) == sorted(theirs)  # ours gone


def test_a_symlink_loop_among_the_photos_is_a_named_bad_photo(here):
    graded = here / "graded"
    for grade in "ABC":
        for i in range(4):
            write_photo(graded / grade / f"{i}.jpg", seed=10 * ord(grade) + i)
    (graded / "A" / "a.jpg").symlink_to("b.jpg")
    (graded / "A" / "b.jpg").symlink_to("a.jpg")
    (graded / "B" / "here").symlink_to(".")
    tiny = ["--model", "rf", "--set", "n_estimators=3", "--set", "features.size=8", "--cv", "2"]
    for args in (("data", "inspect", graded), ("predict", here / "svm", graded, "--out",
                 here / "p.csv"), ("evaluate", here / "svm", graded, "--out", here / "e.json"),
                 ("train", graded, *tiny, "--out", here / "run")):  # fmt: skip
        refused(run(*args), "A/a.jpg", "symbolic links", "--skip-bad")
        done = run(*args, "--skip-bad")
        assert done.exit_code == 0 and "Traceback" not in done.output, done.output
        skipped = here / "run" / "skipped.csv"
        assert "a.jpg" in (skipped.read_text() if args[0] == "train" else done.output)


@pytest.mark.parametrize(
    ("name", "content", "named"),
    [
        ("config.yaml", b"model: rf\n\xff\xfe bad: utf8\n", "not UTF-8"),
        ("config.yaml", b"[" * 50_000, "nested too deeply"),
        ("metrics.json", b"[" * 50_000, "nested too deeply"),
        (".mangograde-run", b"[" * 50_000, "not a finished run"),
    ],
)
def test_run_files_that_are_damaged_or_too_deep_are_named(here, name, content, named):
    (here / "rf" / name).write_bytes(content)
    result = run("predict", here / "rf", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, name if name != ".mangograde-run" else "rf", named)


def test_resume_from_a_stage_with_foreign_yaml_is_refused(here):
    stage = here / ".resumed.partial"
    (stage / "checkpoints").mkdir(parents=True)
    (stage / "config.yaml").write_text("model: !!python/object/apply:os.system ['true']\n")
    (stage / ".mangograde-run").write_text('{"format": "mangograde-run", "entries": []}')
    result = run("train", here / "data" / "train", "--labels", here / "data" / "train.csv",
                 "--model", "cnn", "--cv", "2", "--out", here / "resumed", "--resume")  # fmt: skip
    refused(result, "Cannot resume", "config.yaml")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda m: m.update(grades=["A", "A", "A"]), "a name is repeated"),
        (lambda m: m.update(grades=["<script>", "B", "C"]), "no < > or control"),
        (lambda m: m.pop("preprocessing"), "'preprocessing' is missing"),
        ("deep", "nested too deeply"),
        ("temperature", "temperature -1 is not a number above 0"),
        ("nan", "temperature nan is not a number above 0"),
    ],
)
def test_values_in_a_runs_files_are_checked_on_load(here, edit, named):
    manifest = here / "svm" / "model" / "fold-0" / "bundle.json"
    if edit in ("temperature", "nan"):
        value = "-1" if edit == "temperature" else "NaN"
        (here / "svm" / "calibration.json").write_text(f'{{"temperature": {value}}}')
    elif edit == "deep":
        manifest.write_text("[" * 200_000)
    else:
        record = json.loads(manifest.read_text())
        edit(record)
        manifest.write_text(json.dumps(record))
    result = run("predict", here / "svm", here / "data" / "dev", "--out", here / "p.csv")
    refused(result, named)
    assert not (here / "p.csv").exists()
