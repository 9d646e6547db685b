"""``mangograde export``: a CNN run as one ONNX graph that grades without PyTorch (a
classical run as its arrays: :mod:`.export_classical`).

The graph takes photos decoded at the run's geometry (uint8 ``(N, R, R, 3)``, a dynamic
batch) and returns each fold model's probabilities ``(N, models, grades)``; centre crop,
normalisation and flip TTA are inside it. One graph for all folds, rather than a file per
member: one session to load, one forward pass for the ensemble, and the rule that combines
them (mean, or a blend's vote) stays in ``grader.json``, applied exactly as
:class:`~mangograde.runs.RunPredictor` applies it. Written with the dynamo exporter, the
weights inside the file (``external_data=False``, which quantisation's pre-processing needs).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..basics.outputs import claim_folder
from ..basics.progress import Bar
from ..evaluation.fruits import fruit_rule
from ..evaluation.not_a_fruit import split_arrays
from ..graders import GRADER_FILE, ExportError, export_grader, sha256
from ..graders.exported import FORMAT, ONNX_FORMAT_VERSION
from ..graders.schema import MODEL_FILE, NUMPY_FILE
from ..images import ImageCache, load_images
from ..images.geometry import read_geometry
from ..models.registry import model_names
from ..runs import open_run
from ..runs.folder import Run
from .export_classical import is_network, write_arrays
from .export_not_a_fruit import FILES as CHECK_FILES
from .export_not_a_fruit import write_not_a_fruit

FAMILIARITY_FILE = "familiarity.npz"
PARITY_PHOTOS = 32
PARITY_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    out: Path
    manifest: dict[str, Any]
    accuracy: dict[str, float]  # with --check: fp32 and (with --int8) int8


def _networks(
    run: Run, fold: int | None, loaded: list[Any]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Every CNN of the run's bundles (fold models, or blend members) and how they grade
    together."""
    members: list[Any] = []
    bundles = []
    for number, bundle in enumerate(loaded):
        model = bundle.model
        own = list(getattr(model, "estimators_", [model]))
        if not all(hasattr(m, "module_") for m in own):
            raise ExportError(
                f"{run.path} is a {run.model_kind} run: only CNN runs export to ONNX (a family "
                f"whose models are networks, such as cnn). Grade it with `mangograde predict "
                f"{run.path}`; families here: {', '.join(model_names())}."
            )
        for m in own:
            if list(m.classes_) != list(range(len(run.grades))):
                raise ExportError(
                    f"A model of {run.path} was trained on fewer grades than the run has: "
                    "such a run does not export. Retrain with photos of every grade in each fold."
                )
        voting = getattr(model, "voting", "mean") if hasattr(model, "estimators_") else "mean"
        indices = list(range(len(members), len(members) + len(own)))
        bundles.append({"name": _names(run, fold)[number], "members": indices, "voting": voting})
        members.extend(own)
    return members, bundles


def _names(run: Run, fold: int | None) -> list[str]:
    """The bundles' folder names (``fold-N``), all of them or fold ``fold``'s."""
    folders = run.bundle_folders()
    return [folders[fold].name] if fold is not None else [f.name for f in folders]


def _split(network: Any) -> tuple[Any, Any] | None:
    """The network as its body (up to the penultimate features) and its last layer, when
    the last Linear is what the network returns (checked on a photo); else None."""
    import copy

    from torch import nn

    names = [n for n, m in network.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        return None
    body = copy.deepcopy(network)
    *path, last = names[-1].split(".")
    if path and getattr(body.get_submodule(".".join(path)), "reads_features", False):
        *path, last = path  # a head around the last Linear (the ordinal one)
    owner = body.get_submodule(".".join(path)) if path else body
    head = getattr(owner, last)
    setattr(owner, last, nn.Identity())
    return body.eval(), head


def _same(member: Any, body: Any, head: Any) -> bool:
    """Whether the head of the body's features gives the member's whole network."""
    import torch

    from ..features.transforms import eval_batch

    photos = torch.randint(0, 256, (2, 3, member.size, member.size), dtype=torch.uint8)
    with torch.inference_mode():
        x = eval_batch(photos, member.size)
        try:
            return bool(torch.allclose(member.module_(x), head(body(x).flatten(1)), atol=1e-5))
        except RuntimeError:  # shapes that do not fit: not a plain last layer
            return False


def _graph(members: list[Any]) -> Any:
    import torch
    from torch import nn

    from ..features.transforms import eval_batch

    splits = [_split(m.module_.eval()) for m in members]
    features = all(s is not None and _same(m, *s) for m, s in zip(members, splits, strict=True))

    class Ensemble(nn.Module):
        """uint8 NHWC photos -> ``(N, models, grades)`` probabilities, and (``features``)
        ``(N, sum of widths)``: each member's penultimate features of the unflipped view,
        side by side (the familiarity model's input)."""

        def __init__(self) -> None:
            super().__init__()
            self.networks = nn.ModuleList([m.module_.eval() for m in members])
            self.bodies = nn.ModuleList([s[0] for s in splits] if features else [])
            self.heads = nn.ModuleList([s[1] for s in splits] if features else [])
            self.sizes = [int(m.size) for m in members]
            self.tta = [bool(m.tta) for m in members]
            self.features = features
            self.widths = [[m for m in n.modules() if isinstance(m, nn.Linear)][-1].in_features
                           for n in self.networks]  # fmt: skip

        def forward(self, photos: torch.Tensor) -> Any:
            x = photos.permute(0, 3, 1, 2)
            out, seen = [], []
            for i, (size, tta) in enumerate(zip(self.sizes, self.tta, strict=True)):
                view = eval_batch(x, size)
                views = [view, view.flip(3), view.flip(2), view.flip((2, 3))] if tta else [view]
                if self.features:
                    found = [self.bodies[i](v).flatten(1) for v in views]
                    seen.append(found[0])
                    total = sum(torch.softmax(self.heads[i](f), 1) for f in found)
                else:
                    total = sum(torch.softmax(self.networks[i](v), 1) for v in views)
                out.append(total / len(views))
            probabilities = torch.stack(out, 1)
            return (probabilities, torch.cat(seen, 1)) if self.features else probabilities

    return Ensemble().eval()


def _write_onnx(graph: Any, side: int, path: Path, opset: int) -> None:
    import torch

    sample = torch.zeros((2, side, side, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(
            graph, (sample,), str(path), dynamo=True, external_data=False, opset_version=opset,
            input_names=["photos"],
            output_names=["probabilities", "features"] if graph.features else ["probabilities"],
            dynamic_shapes={"photos": {0: batch}}, verbose=False,
        )  # fmt: skip
    except ImportError as exc:
        raise ExportError(f"Export needs {exc.name}: pip install onnx onnxscript.") from None
    import onnx

    written = onnx.load(str(path))
    onnx.checker.check_model(written)
    found = {o.domain: o.version for o in written.opset_import}.get("")
    if found != opset:
        raise ExportError(
            f"--opset {opset}: PyTorch wrote the graph in opset {found} instead. Choose an "
            f"opset it can write (e.g. {found})."
        )


def _newest_opset() -> int:
    try:
        import onnx
    except ImportError:
        raise ExportError("Export needs onnx: pip install onnx onnxscript.") from None
    return int(onnx.defs.onnx_opset_version())


def _session(path: Path) -> Any:
    """An ONNX Runtime session of the written graph."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own classes, e.g. for a new opset
        raise ExportError(
            f"ONNX Runtime {onnxruntime.__version__} cannot load the exported graph ({exc}). "
            "Choose an older --opset (18 is the default)."
        ) from None


def _outputs(graph: Any, session: Any, photos: np.ndarray) -> tuple[list, list]:
    """ONNX Runtime's and PyTorch's outputs (probabilities, then any features) on ``photos``."""
    import torch

    theirs = session.run(None, {"photos": photos})
    with torch.inference_mode():
        ours = graph(torch.from_numpy(photos))
    return theirs, [t.numpy() for t in ours] if graph.features else [ours.numpy()]


def _parity(graph: Any, path: Path, side: int) -> float:
    """Largest probability difference between PyTorch and ONNX Runtime on fixed photos."""
    photos = np.random.default_rng(0).integers(0, 256, (PARITY_PHOTOS, side, side, 3), np.uint8)
    theirs, ours = _outputs(graph, _session(path), photos)
    # features (unbounded) by their scale; probabilities as they are
    scales = [1.0, *(max(1.0, float(np.abs(f).max())) for f in ours[1:])]
    pairs = zip(theirs, ours, scales, strict=True)
    return max(float(np.abs(a - b).max()) / scale for a, b, scale in pairs)


def _int8_agreement(graph: Any, path: Path, photos: np.ndarray, what: str) -> dict[str, Any]:
    """How far the int8 graph's probabilities are from PyTorch's, and how often the grade
    is the same, on real photos (``what`` says which)."""
    diffs, same, graded = [], 0, 0
    session = _session(path)
    for start in range(0, len(photos), 64):
        theirs, ours = _outputs(graph, session, photos[start : start + 64])
        diffs.append(float(np.abs(theirs[0] - ours[0]).max()))
        agree = theirs[0].argmax(-1) == ours[0].argmax(-1)  # (photos, networks)
        same, graded = same + int(agree.sum()), graded + agree.size
    return {
        "photos": len(photos),
        "on": what,
        "max_abs_diff": max(diffs),
        "label_agreement": same / graded,  # each network's grade of each photo
    }


def _quantize(path: Path, calibration: np.ndarray, work: Path) -> None:
    """Static int8 (QDQ, weights int8 per channel, activations uint8: ONNX Runtime's fast
    path on x86, 1.19x fp32 on an AVX2 machine where int8 activations were 0.78x),
    activations calibrated on the given photos."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Photos(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // 16)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"photos": batch}

    prepared = work / "prepared.onnx"
    # Symbolic shape inference trips on fast-cnn's mean + max pooling concat.
    quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # per-channel notes on 1-D weights, which stay per-tensor
    try:
        quantize_static(
            str(prepared), str(path), Photos(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )  # fmt: skip
    finally:
        root.setLevel(level)


def _accuracy(folder: Path, photos: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(export_grader(folder).predict(photos) == truth))


def _labelled(
    run: Run, check: Path, labels: Path | None, geometry: Any, cache: Any, annotations: str
) -> tuple[np.ndarray, np.ndarray]:
    """The --check photos (grade folders, or a folder with --labels) and their grades."""
    from ..data import load_dataset

    dataset = load_dataset(
        check, labels, grades=run.grades, allow_single_grade=True, annotations=annotations
    )
    if dataset.labels is None:
        raise ExportError(
            f"--check {check} holds no grades: give a folder of grade folders, or its "
            "photos with --labels CSV."
        )
    loaded = load_images(dataset.paths, geometry, cache)
    bad = {b.path for b in loaded.bad}
    truth = np.array([code for p, code in zip(dataset.paths, dataset.labels, strict=True)
                      if p not in bad])  # fmt: skip
    return loaded.arrays, truth


def export_run(
    run_dir: str | Path,
    out: str | Path,
    fold: int | None = None,
    opset: int = 18,
    int8: bool = False,
    calibration: list[Path] | None = None,
    check: Path | None = None,
    labels: Path | None = None,
    cache: ImageCache | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    annotations: str = "latest",
) -> ExportResult:
    """Export ``run_dir`` (all folds, or ``fold``) into the folder ``out``, a step bar
    saying which part of the work it is on."""
    out = claim_folder(Path(out))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} is not empty: choose another --out, or pass --overwrite.")
        if not (out / GRADER_FILE).is_file():
            raise ExportError(f"{out} holds no mangograde export: refusing to replace it.")
    if labels is not None and check is None:
        raise ExportError("--labels CSV names the grades of --check PHOTOS: give --check too.")
    run = open_run(run_dir)
    if run.member_paths:  # an ensemble of runs: each member's export, and the mean
        from .export_ensemble import export_ensemble

        if int8 or check is not None:
            raise ExportError(
                "An ensemble exports its members as they are: drop --int8 and --check, and "
                "check the export with mangograde evaluate."
            )
        manifest = export_ensemble(run, out, export_run, fold, progress)
        return ExportResult(out, manifest, {})
    loaded = run.bundles(fold)
    if not any(is_network(b.model) for b in loaded):
        if int8:
            raise ExportError(
                f"--int8 quantises an ONNX graph of networks; {run.path} is a {run.model_kind} "
                "run, exported as its own arrays and graded as the run grades. Drop --int8."
            )
        checked = (check, labels, cache, annotations)
        return _export_arrays(run, loaded, fold, out, checked, progress)
    newest = _newest_opset()
    if not 17 <= opset <= newest:
        raise ExportError(
            f"--opset must be 17 to {newest} (the installed onnx's newest), got {opset}."
        )
    if int8 and not calibration:
        raise ExportError("--int8 needs --calibration PHOTOS: a few dozen photos like the line's.")
    steps = 4 + (check is not None) + 2 * int8
    with Bar(steps, "Exporting", progress) as bar:
        members, bundles = _networks(run, fold, loaded)
        geometry = loaded[0].manifest["preprocessing"]["geometry"]
        shape = read_geometry(geometry)
        assert shape is not None  # the run opened, so its geometry was read already
        side = shape.shape[0]
        graph = _graph(members)
        labelled = _labelled(run, check, labels, shape, cache, annotations) if check else None
        bar.advance(1, "run loaded; writing the ONNX graph")
        accuracy: dict[str, float] = {}
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
            stage = Path(work) / "export"
            stage.mkdir()
            model = stage / MODEL_FILE
            _write_onnx(graph, side, model, opset)
            bar.advance(1, "checking ONNX Runtime against PyTorch")
            drift = _parity(graph, model, side)
            if drift > PARITY_TOLERANCE:
                raise ExportError(
                    f"ONNX Runtime and PyTorch disagree by {drift:.2e} on the same photos (over "
                    f"{PARITY_TOLERANCE}): the export is not trustworthy; please report it."
                )
            bar.advance(1, "familiarity statistics")
            manifest = _manifest(run, fold, bundles, members, geometry, opset, drift)
            manifest["familiarity"] = _familiarity(graph, loaded, stage)
            manifest["not_a_fruit"] = write_not_a_fruit(loaded, stage)
            _write_manifest(stage, manifest)
            bar.advance(1, "grading the --check photos" if labelled is not None else "done")
            if labelled is not None:
                accuracy["fp32"] = _accuracy(stage, *labelled)
                bar.advance(1, "calibrating int8" if int8 else "done")
            if int8:
                _to_int8(graph, model, manifest, calibration or [], shape, cache, labelled, work)
                _write_manifest(stage, manifest)
                bar.advance(1, "measuring the int8 graph")
                if labelled is not None:
                    accuracy["int8"] = _accuracy(stage, *labelled)
                bar.advance(1, "done")
            if out.exists():
                shutil.rmtree(out)
            stage.rename(out)
    return ExportResult(out, manifest, accuracy)


def _export_arrays(
    run: Run,
    loaded: list[Any],
    fold: int | None,
    out: Path,
    checked: tuple[Path | None, Path | None, ImageCache | None, str],
    progress: bool | None,
) -> ExportResult:
    """A classical run's fold models as arrays graded with numpy (:mod:`.export_classical`),
    staged and renamed into ``out`` as an ONNX export is."""
    check, labels, cache, annotations = checked
    with Bar(3 + (check is not None), "Exporting", progress) as bar:
        geometry = loaded[0].manifest["preprocessing"]["geometry"]
        shape = read_geometry(geometry)
        assert shape is not None  # the run opened, so its geometry was read already
        labelled = _labelled(run, check, labels, shape, cache, annotations) if check else None
        bar.advance(1, "run loaded; writing its arrays")
        accuracy: dict[str, float] = {}
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as work:
            stage = Path(work) / "export"
            stage.mkdir()
            common = _common_manifest(run, fold, len(loaded), geometry)
            manifest = write_arrays(run, loaded, _names(run, fold), stage, common, _write_manifest)
            bar.advance(1, "checked against the run")
            if labelled is not None:
                accuracy["run"] = _accuracy(stage, *labelled)
                bar.advance(1, "graded the --check photos")
            bar.advance(1, "done")
            if out.exists():
                shutil.rmtree(out)
            stage.rename(out)
    return ExportResult(out, manifest, accuracy)


def _to_int8(
    graph: Any,
    model: Path,
    manifest: dict[str, Any],
    calibration: list[Path],
    shape: Any,
    cache: ImageCache | None,
    labelled: tuple[np.ndarray, np.ndarray] | None,
    work: str,
) -> None:
    """Quantise ``model`` in place, calibrated on the ``calibration`` photos, and record in
    ``manifest`` how far the int8 graph is from PyTorch."""
    from ..data import find_photos

    photos, _, _ = find_photos([Path(p) for p in calibration])
    loaded = load_images(photos, shape, cache)
    _quantize(model, loaded.arrays, Path(work))
    manifest["precision"] = "int8"
    manifest["calibration_photos"] = len(loaded.arrays)
    measured = (labelled[0], "check") if labelled is not None else (loaded.arrays, "calibration")
    manifest["int8_agreement"] = _int8_agreement(graph, model, *measured)


def _manifest(
    run: Run,
    fold: int | None,
    bundles: list[dict[str, Any]],
    members: list[Any],
    geometry: dict[str, Any],
    opset: int,
    drift: float,
) -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    from ..features.transforms import MEAN, STD

    return {
        "format": FORMAT,
        "format_version": ONNX_FORMAT_VERSION,
        "model": MODEL_FILE,
        **_common_manifest(run, fold, len(bundles), geometry),
        "normalisation": {"mean": list(MEAN), "std": list(STD)},
        "members": [
            {"size": int(m.size), "tta_flips": bool(m.tta), "architecture": m.architecture}
            for m in members
        ],
        "bundles": bundles,
        "precision": "fp32",
        "opset": opset,
        "parity_max_abs_diff": drift,
        "versions": {"mangograde": __version__, "torch": torch.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
    }  # fmt: skip


def _common_manifest(
    run: Run, fold: int | None, bundles: int, geometry: dict[str, Any]
) -> dict[str, Any]:
    """What every export's grader.json says of its run, whatever grades it."""
    return {
        "grades": list(run.grades),
        "labels": "ordered" if run.ordered else "unordered",
        "geometry": geometry,
        "input": "uint8 (N, H, W, 3) RGB photos decoded at the geometry",
        "fold_rule": f"fold {fold} alone" if fold is not None else (
            "mean of the folds' probabilities" if bundles > 1 else "one model"),
        "decision": run.settings.get("decision", "argmax"),
        "temperature": run.temperature(fold),
        "abstain": run.settings.get("abstain"),
        "fruit_rule": fruit_rule(run.settings),
        "fruit_temperature": run.temperature(fold, "fruit"),
        "source_run": run.name,
        "source": {
            "family": run.model_kind,
            "preset": run.settings.get("preset"),
            "metrics": run.headline_metrics,
        },
    }  # fmt: skip


def _familiarity(graph: Any, loaded: list[Any], stage: Path) -> dict[str, Any] | None:
    """Each bundle's familiarity model as plain arrays in ``familiarity.npz`` (read by
    :class:`~mangograde.graders.ExportedGrader` with the graph's features), and what
    grader.json says of it; None when the run has none or the graph gives no features."""
    arrays = [split_arrays(b.familiarity)[0] for b in loaded]
    if not graph.features or any(a is None for a in arrays):
        return None
    from ..evaluation.familiarity import METHOD, Familiarity, FamiliarityModel

    familiarity = Familiarity(tuple(FamiliarityModel.from_arrays(a) for a in arrays))
    np.savez(stage / FAMILIARITY_FILE, **familiarity.arrays())
    return {
        "file": FAMILIARITY_FILE,
        "method": METHOD,
        "member_features": [int(w) for w in graph.widths],
        "threshold": familiarity.threshold,
        "reference_photos": familiarity.reference_size,
    }


def _write_manifest(stage: Path, manifest: dict[str, Any]) -> None:
    names = (MODEL_FILE, NUMPY_FILE, FAMILIARITY_FILE, *CHECK_FILES)
    manifest["files"] = {name: sha256(stage / name) for name in names
                         if (stage / name).is_file()}  # fmt: skip
    (stage / GRADER_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
