"""head=cumulative: an ordinal head (proportional odds) for the CNN families."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mangograde.basics.errors import SettingsError
from mangograde.models.cnn import CumulativeLink, build_network, with_head

from .service_helpers import NO_FLIPS, train_tiny
from .test_cli import run
from .test_cli_models import read_csv


def test_the_head_gives_valid_ordered_probabilities_and_learns():
    torch.manual_seed(0)
    head = CumulativeLink(4, 3)
    x = torch.randn(256, 4)
    proba = head(x).exp()
    assert torch.allclose(proba.sum(1), torch.ones(256), atol=1e-5) and (proba >= 0).all()
    # A higher score moves probability towards the worse grades, never back.
    scores = torch.linspace(-5, 5, 11)
    head.score.weight.data.zero_()
    means = []
    for s in scores:
        head.score.bias.data.fill_(float(s))
        means.append(float((head(x[:1]).exp() * torch.arange(3)).sum()))
    assert means == sorted(means)
    # It learns a grade that grows with the first feature.
    y = torch.bucketize(x[:, 0], torch.tensor([-0.5, 0.5]))
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(head(x), y).backward()
        optimiser.step()
    assert (head(x).argmax(1) == y).float().mean() > 0.9


def test_the_last_linear_layer_is_replaced():
    network = with_head(build_network("fast-cnn", 3, 64, width=8), "cumulative", 3)
    assert isinstance(network.head[-1], CumulativeLink)
    out = network.eval()(torch.zeros(2, 3, 64, 64))
    np.testing.assert_allclose(out.exp().sum(1).detach().numpy(), 1, atol=1e-5)
    with pytest.raises(SettingsError, match="Unknown head"):
        with_head(network, "sigmoid", 3)


def test_a_cumulative_cnn_trains_grades_explains_and_exports(tmp_path):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path / "run", "--model", "cnn", "--cv", "2", "--set",
                     "features.size=32", "--set", "epochs=2", "--set", "width=8",
                     "--set", "head=cumulative", *NO_FLIPS)  # fmt: skip
    rows = read_csv(out / "predictions.csv")
    proba = np.array([[float(r[f"p_{g}"]) for g in "ABC"] for r in rows])
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    photo = root / "train" / "mango_00000.jpg"
    assert run("explain", out, photo, "--out", tmp_path / "e.png").exit_code == 0
    pytest.importorskip("onnxscript")
    exported = run("export", out, "--out", tmp_path / "onnx")
    assert exported.exit_code == 0, exported.output
    # the ordinal head is split off whole: the graph gives its input as the features
    manifest = json.loads((tmp_path / "onnx" / "grader.json").read_text())
    assert manifest["familiarity"] is not None
    scores = []
    for grader in (out, tmp_path / "onnx"):
        target = tmp_path / f"{grader.name}.csv"
        assert run("predict", grader, root / "dev", "--out", target).exit_code == 0
        scores.append([float(r["familiarity"]) for r in read_csv(target)])
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-3)
