"""Safe model bundles, and settings: presets < file < --set < flags."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mangograde.basics.errors import SettingsError
from mangograde.models import registry
from mangograde.models.bundle import BundleError, load_bundle, save_bundle


@pytest.fixture
def bundle_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (18, 12, 12, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 6)
    settings = registry.resolve(preset_name="rf-study", assignments=["size=12", "n_estimators=5"])
    model = registry.build_model(settings).fit(images, y)
    folder = save_bundle(model, tmp_path / "model", settings, ("A", "B", "C"), {"size": 12})
    return folder, model, images


def test_bundle_round_trip_predicts_the_same_and_records_what_it_needs(bundle_dir):
    folder, model, images = bundle_dir
    bundle = load_bundle(folder)
    np.testing.assert_array_equal(bundle.model.predict_proba(images), model.predict_proba(images))
    assert bundle.grades == ("A", "B", "C")
    assert bundle.settings["preset"] == "rf-study"
    assert {"numpy", "scikit-learn", "python"} <= set(bundle.manifest["versions"])
    assert bundle.notices == []


def test_a_bundle_from_other_library_versions_loads_with_a_notice(bundle_dir):
    folder, model, images = bundle_dir
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["versions"]["scikit-learn"] = "1.8.0"
    (folder / "bundle.json").write_text(json.dumps(manifest))
    bundle = load_bundle(folder)
    assert "scikit-learn 1.8.0" in bundle.notices[0]
    np.testing.assert_array_equal(bundle.model.predict(images), model.predict(images))


def test_a_changed_model_file_is_refused(bundle_dir):
    folder, _, _ = bundle_dir
    data = bytearray((folder / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(folder)


@pytest.mark.parametrize("foreign", ["os.system", "builtins.eval", "tests.helpers.Payload"])
def test_a_file_naming_other_types_is_refused_even_with_a_matching_checksum(bundle_dir, foreign):
    folder, _, _ = bundle_dir
    tree = json.loads((folder / "model.json").read_text())
    tree["root"]["state"]["dict"][0][1] = {"object": foreign, "state": {"dict": []}}
    data = json.dumps(tree).encode()
    (folder / "model.json").write_bytes(data)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["files"]["model.json"] = hashlib.sha256(data).hexdigest()
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=f"names the type {foreign}, which is not allowed"):
        load_bundle(folder)


def test_saving_an_unknown_type_is_refused_by_name(tmp_path):
    with pytest.raises(BundleError, match="Cannot save an object of type builtins.object"):
        save_bundle(object(), tmp_path / "m", {}, ("A",), {})


def test_a_folder_without_a_manifest_is_named_in_the_error(tmp_path):
    with pytest.raises(BundleError, match="bundle.json is missing"):
        load_bundle(tmp_path)


def test_settings_precedence_preset_file_set_flags(tmp_path):
    file = tmp_path / "s.yaml"
    file.write_text("params:\n  C: 3\n  n_components: 50\nfeatures:\n  size: 64\n")
    settings = registry.resolve(
        preset_name="svm-study",
        file=file,
        assignments=["C=4", "features.polar=false"],
        overrides={"split": {"cv": 3, "val_fraction": None}, "seed": 7},
    )
    assert settings["params"]["C"] == 4.0  # --set beats the file
    assert settings["params"]["n_components"] == 50  # the file beats the preset
    assert settings["params"]["kernel"] == "rbf"  # the preset / defaults remain
    assert settings["features"] == {**settings["features"], "size": 64, "polar": False}
    assert settings["split"]["cv"] == 3 and settings["seed"] == 7


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"preset_name": "svm-studdy"},
            "Valid presets: best, cnn-fast, cnn-study, colour-texture, rf-study",
        ),
        ({"preset_name": "svm-study", "assignments": ["params.Cee=2"]}, "Valid here: C,"),
        ({"preset_name": "svm-study", "assignments": ["params.C=high"]}, "must be float"),
        ({"preset_name": "svm-study", "assignments": ["novalue"]}, "key=value"),
        ({"model": "rf", "preset_name": "svm-study"}, "is for --model svm"),
        ({}, "Name a model"),
    ],
)
def test_bad_settings_say_what_is_valid(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        registry.resolve(**kwargs)


def test_presets_cover_the_study_recipes():
    svm = registry.resolve(preset_name="svm-study")
    assert svm["features"] | {"kind": "pixels"} == {
        "kind": "pixels", "size": 192, "polar": True, "polar_half": False, "expand": "none"
    }  # fmt: skip
    assert (svm["params"]["n_components"], svm["params"]["C"]) == (200, 1.5)
    assert svm["search"]["gamma"] == [1e-6, 1e-5, 1e-4, 1e-3]
    rf = registry.resolve(model="rf")
    assert rf["preset"] == "rf-study" and rf["params"]["n_estimators"] == 1000
    assert (rf["features"]["size"], rf["features"]["expand"]) == (128, "flip-rotate")
