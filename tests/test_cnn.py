"""CNN architectures, transforms, training, checkpoints and blending, on tiny photos."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from mangograde.basics.errors import OutputError, SettingsError
from mangograde.data.synth import make_fruit, render
from mangograde.features.transforms import (
    BatchAugment,
    eval_batch,
    eval_transforms,
    train_transforms,
)
from mangograde.models import registry
from mangograde.models.blend import FoldEnsemble
from mangograde.models.bundle import load_bundle, save_bundle
from mangograde.models.cnn import ARCHITECTURES, build_network, multiply_adds
from mangograde.models.cnn_estimator import CHECKPOINT, CNNClassifier

torch.set_num_threads(1)  # tests stay quick and exact beside other processes
TINY = {"architecture": "fast-cnn", "size": 32, "width": 8, "batch_size": 8, "threads": 1}


def photos(n: int, size: int = 37, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic mango photos (grades cycle A, B, C) and their grades."""
    rng = np.random.default_rng(seed)
    grades = np.arange(n) % 3
    return np.stack([render(make_fruit(rng, int(g)), rng, size) for g in grades]), grades


@pytest.mark.parametrize(
    ("order", "activation", "pooling", "dense_layers"),
    list(
        itertools.product(
            ("act-bn", "bn-act"), ("relu", "leaky_relu", "prelu"), ("max", "conv"), (0, 3)
        )
    )
    + [("act-bn", "prelu", "max", 1), ("act-bn", "prelu", "max", 2)],
)
def test_study_cnn_output_shape_for_every_option(order, activation, pooling, dense_layers):
    net = build_network(
        "study-cnn",
        3,
        64,
        order=order,
        activation=activation,
        pooling=pooling,
        dense_layers=dense_layers,
        dropout=0.3,
    ).eval()
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("size", [32, 96])
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_takes_any_multiple_of_32(name, size):
    net = build_network(name, 4, size).eval()
    assert net(torch.zeros(2, 3, size, size)).shape == (2, 4)


def test_study_cnn_is_the_studys_table():
    net = build_network("study-cnn", 3, 224)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    # conv -> PReLU -> BatchNorm: activation before normalisation
    assert isinstance(net.features[1], torch.nn.PReLU)
    assert isinstance(net.features[2], torch.nn.BatchNorm2d)
    linears = [m for m in net.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (512 * 7 * 7, 512),
        (512, 256),
        (256, 64),
        (64, 3),
    ]
    assert [m.p for m in net.head if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]
    swapped = build_network("study-cnn", 3, 224, order="bn-act")
    assert isinstance(swapped.features[1], torch.nn.BatchNorm2d)


def test_fast_cnn_needs_far_fewer_multiply_adds():
    study = multiply_adds(build_network("study-cnn", 3, 128), 128)
    fast = multiply_adds(build_network("fast-cnn", 3, 128), 128)
    assert 1.0e9 < study < 1.2e9  # ~1.08 G multiply-adds at 128 px
    assert fast * 10 < study


def test_unknown_architecture_and_bad_sizes_are_named():
    with pytest.raises(SettingsError, match="fast-cnn, pretrained, study-cnn"):
        build_network("resnet9000", 3, 64)
    with pytest.raises(SettingsError, match="multiple of 32.*Try 96"):
        build_network("study-cnn", 3, 100)
    with pytest.raises(SettingsError, match="Valid: relu, leaky_relu, prelu"):
        build_network("study-cnn", 3, 64, activation="tanh")


def test_eval_transforms_are_deterministic_and_match_the_batch_version():
    images, _ = photos(4)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2)
    one = eval_transforms(32)
    first = torch.stack([one(p) for p in batch])
    assert torch.equal(first, torch.stack([one(p) for p in batch]))
    assert torch.allclose(eval_batch(batch, 32), first, atol=1e-3)


def test_train_transforms_are_random_but_seedable():
    images, _ = photos(4)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    per_photo = train_transforms(32)
    assert per_photo(batch[0]).shape == (3, 32, 32)
    assert not torch.equal(per_photo(batch[0]), per_photo(batch[0]))
    fused = BatchAugment(32, torch.Generator().manual_seed(1))
    a, b = fused(batch), fused(batch)
    assert a.shape == (4, 3, 32, 32) and not torch.equal(a, b)
    again = BatchAugment(32, torch.Generator().manual_seed(1))(batch)
    assert torch.equal(a, again)


def test_batch_augment_with_neutral_draws_is_the_eval_transform(monkeypatch):
    """Middle of every range: no flip, no rotation, no perspective, jitter factor 1."""
    images, _ = photos(3)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    augment = BatchAugment(32)

    def middle(*shape, low=0.0, high=1.0):
        return torch.full(shape, (low + high) / 2, dtype=torch.float64)

    monkeypatch.setattr(augment, "_uniform", middle)
    assert torch.allclose(augment(batch), eval_batch(batch, 32), atol=1e-3)


def test_batch_augment_flips_are_exact(monkeypatch):
    images, _ = photos(2)
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    augment = BatchAugment(32)
    draws = iter([0.5, 0.5, 0.5, 0.0, 0.0])  # shift, skew, angle, vflip, hflip; then jitter

    def scripted(*shape, low=0.0, high=1.0):
        value = next(draws, 0.5)
        return torch.full(shape, low + (high - low) * value, dtype=torch.float64)

    monkeypatch.setattr(augment, "_uniform", scripted)
    flipped = eval_batch(batch, 32).flip(2, 3)
    assert torch.allclose(augment(batch), flipped, atol=1e-3)


def test_a_training_step_lowers_the_loss():
    torch.manual_seed(0)
    net = build_network("study-cnn", 3, 32)
    x, y = torch.randn(8, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_cnn_fast_overfits_16_photos():
    """The recipe can fit: with augmentation off, it learns 16 photos by heart."""
    tiny = ["features.size=32", "epochs=30", "batch_size=8", "augment=none"]
    model = registry.build_model(registry.resolve(preset_name="cnn-fast", assignments=tiny))
    images, grades = photos(16)
    model.fit(images, grades)
    train_acc = [r["train_acc"] for r in model.history_]
    assert train_acc[0] < 0.7 and train_acc[-1] == 1.0
    # Graded in eval mode (BatchNorm's running statistics, the moving average): most right.
    assert np.mean(model.predict(images) == grades) >= 0.7


def test_classifier_predicts_probabilities_in_grade_order():
    images, grades = photos(12)
    named = np.array(["A", "B", "C"])[grades]
    model = CNNClassifier(**TINY, epochs=1).fit(images, named)
    proba = model.predict_proba(images)
    assert proba.shape == (12, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert list(model.classes_) == ["A", "B", "C"]
    assert set(model.predict(images)) <= {"A", "B", "C"}
    assert model.history_[0]["data_s"] > 0 and model.history_[0]["step_s"] > 0


def test_bf16_training_learns_like_fp32_and_grades_in_fp32():
    """precision=bf16 runs the training steps under bfloat16 autocast: other weights than
    fp32's (so it did take effect), the same fit on 16 photos, fp32 weights kept."""
    tiny = ["features.size=32", "epochs=30", "batch_size=8", "augment=none"]
    fits = {}
    for precision in ("fp32", "bf16"):
        settings = registry.resolve(
            preset_name="cnn-fast", assignments=[*tiny, f"precision={precision}"]
        )
        fits[precision] = registry.build_model(settings).fit(*photos(16))
    first = [next(iter(fits[p].module_.state_dict().values())) for p in fits]
    assert first[1].dtype == torch.float32 and not torch.equal(*first)
    assert fits["bf16"].history_[-1]["train_acc"] == fits["fp32"].history_[-1]["train_acc"] == 1.0
    with pytest.raises(SettingsError, match="Unknown precision 'fp16'. Valid: fp32, bf16"):
        CNNClassifier(**TINY, precision="fp16").fit(*photos(6))


def _weights(model):
    return {k: v.clone() for k, v in model.module_.state_dict().items()}


def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, monkeypatch):
    images, grades = photos(12)
    params = {**TINY, "epochs": 3, "dropout": 0.3}
    whole = CNNClassifier(**params, checkpoint_dir=tmp_path / "whole").fit(images, grades)

    original = CNNClassifier._checkpoint
    saves = []

    def killed_after_two(self, *args, **kwargs):
        original(self, *args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(CNNClassifier, "_checkpoint", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        CNNClassifier(**params, checkpoint_dir=tmp_path / "killed").fit(images, grades)
    monkeypatch.setattr(CNNClassifier, "_checkpoint", original)
    assert (tmp_path / "killed" / CHECKPOINT).is_file()

    resumed = CNNClassifier(**params, checkpoint_dir=tmp_path / "killed", resume=True)
    resumed.fit(images, grades)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    for name, value in _weights(whole).items():
        assert torch.equal(value, _weights(resumed)[name]), name


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    images, grades = photos(9)
    CNNClassifier(**TINY, epochs=1, checkpoint_dir=tmp_path).fit(images, grades)
    other = CNNClassifier(**{**TINY, "lr": 0.5}, epochs=1, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(SettingsError, match="lr was 0.01, now 0.5"):
        other.fit(images, grades)
    same = CNNClassifier(**TINY, epochs=1, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(SettingsError, match="photos or their grades differ"):
        same.fit(images, np.roll(grades, 1))
    other_photos, _ = photos(9, seed=5)
    with pytest.raises(SettingsError, match="photos or their grades differ"):
        same.fit(other_photos, grades)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    images, grades = photos(9)
    model = CNNClassifier(**TINY, epochs=1, checkpoint_dir=tmp_path).fit(images, grades)
    before = (tmp_path / CHECKPOINT).read_bytes()

    def torn(payload, path):
        with open(path, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(OutputError, match="disk full"):
        model.set_params(epochs=2, resume=False).fit(images, grades)
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]


def test_early_stopping_keeps_to_its_own_validation_fruits():
    images, grades = photos(18)
    groups = np.repeat(np.arange(9), 2)
    with pytest.raises(SettingsError, match="validation_fraction"):
        CNNClassifier(**TINY, patience=1).fit(images, grades)
    model = CNNClassifier(**TINY, epochs=30, lr=0.5, patience=1, validation_fraction=0.34)
    model.fit(images, grades, groups)
    assert model.n_epochs_ < 30
    assert all("val_loss" in r for r in model.history_)


def test_bad_settings_are_named():
    images, grades = photos(6)
    with pytest.raises(SettingsError, match="Unknown optimizer 'rmsprop'. Valid: sgd, adam, adamw"):
        CNNClassifier(**TINY, optimizer="rmsprop").fit(images, grades)
    with pytest.raises(SettingsError, match="batch_size at least 2"):
        CNNClassifier(**{**TINY, "batch_size": 1}).fit(images, grades)


def test_bundle_round_trip_gives_the_same_probabilities(tmp_path):
    images, grades = photos(9)
    model = CNNClassifier(**TINY, epochs=1).fit(images, grades)
    save_bundle(model, tmp_path / "b", {"model": "cnn"}, ("A", "B", "C"), {})
    loaded = load_bundle(tmp_path / "b").model
    assert np.allclose(loaded.predict_proba(images), model.predict_proba(images), atol=1e-6)


def test_blending_by_vote_counts_members_votes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    X[:, 0] += y
    vote = FoldEnsemble(LogisticRegression(), n_models=3, voting="vote").fit(X, y)
    members = vote.member_probabilities(X)
    assert members.shape == (3, 60, 3)
    shares = vote.predict_proba(X)
    assert np.allclose(shares * 3, np.round(shares * 3))  # thirds: one vote per model
    counts = np.stack([(members.argmax(2) == g).sum(0) for g in range(3)], 1)
    majority = counts.max(1) >= 2
    assert np.array_equal(vote.predict(X)[majority], counts.argmax(1)[majority])
    mean = FoldEnsemble(LogisticRegression(), n_models=3, voting="mean").fit(X, y)
    assert np.allclose(mean.predict_proba(X), members.mean(0))
    assert np.array_equal(mean.predict(X), members.mean(0).argmax(1))


def test_blended_cnns_train_on_different_splits_and_round_trip(tmp_path):
    images, grades = photos(18)
    groups = np.repeat(np.arange(9), 2)
    blend = FoldEnsemble(CNNClassifier(**TINY, epochs=1), n_models=2, voting="mean")
    blend.fit(images, grades, groups)
    assert len(blend.estimators_) == 2
    assert all("val_acc" in m.history_[0] for m in blend.estimators_)
    save_bundle(blend, tmp_path / "b", {"model": "cnn"}, ("A", "B", "C"), {})
    loaded = load_bundle(tmp_path / "b").model
    assert np.allclose(loaded.predict_proba(images), blend.predict_proba(images), atol=1e-6)
