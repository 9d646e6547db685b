"""The photo as the not-a-fruit check's general image space reads it (numpy and Pillow, so
a run and its export see the same pixels); see :mod:`mangograde.evaluation.not_a_fruit`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

SIZE = 64  # the photo's side in the general space
BLOCKS = 3  # Lite0's stem and first blocks: 40 channels

Embed = Callable[[np.ndarray], np.ndarray]  # decoded photos (n, H, W, 3) -> (n, 40)


def shrunk(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Decoded photos ``(n, H, W, 3)`` uint8 as the general space reads them: ``(n, 3,
    size, size)`` float32 in [-1, 1] (Lite0's input range), shrunk with Pillow, so a run
    and its export see the same pixels."""
    out = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, image in enumerate(images):
        small = Image.fromarray(np.asarray(image, dtype=np.uint8))
        out[i] = np.asarray(small.resize((size, size), Image.Resampling.BILINEAR))
    return np.ascontiguousarray((out / 127.5 - 1.0).transpose(0, 3, 1, 2))


def onnx_embedder(graph: bytes | str, where: str) -> Embed:
    """The general features of decoded photos from the ONNX ``graph`` (bytes or a file),
    with ONNX Runtime on one thread (faster than two on these small layers); ``where``
    names the graph in errors. Refused when it does not take the photos as shrunk here."""
    from ..basics.errors import MangogradeError, first_line

    try:
        import onnxruntime
    except ImportError:
        raise MangogradeError(
            "The not-a-fruit check runs on ONNX Runtime: pip install onnxruntime."
        ) from None
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime's own error classes
        raise MangogradeError(
            f"{where} cannot be loaded by ONNX Runtime ({first_line(exc)})."
        ) from None
    shape = session.get_inputs()[0].shape
    if list(shape[1:]) != [3, SIZE, SIZE] or session.get_outputs()[0].name != "features":
        raise MangogradeError(
            f"{where} takes {shape}, not the not-a-fruit check's photos (3 x {SIZE} x {SIZE})."
        )

    def embed(images: np.ndarray) -> np.ndarray:
        parts = [session.run(["features"], {"photos": shrunk(images[i : i + 128])})[0]
                 for i in range(0, len(images), 128)]  # fmt: skip
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 40))

    return embed
