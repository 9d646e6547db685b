"""``mangograde data labels``: the photos operators corrected, as labels to train on.

The folder written holds ``images/`` (copies of the kept photos), ``labels.csv`` in the
competition's format (``image_id,label``), ``groups.csv`` (``image,group``: the lot and
fruit, so one fruit's photos stay in one fold) and, with ``label-studio``, Label Studio's
JSON tasks with the grades as annotations and a labelling config. The photos an operator
said are not mangoes (:data:`~mangograde.records.REJECT`) never go under a grade: they are
copied to ``reject/`` (a folder of photos of what to reject) and listed in ``rejects.csv``.
It is built beside the target and renamed into place: a folder is never half written, nor
written over."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..basics.csvcells import text_row
from ..basics.errors import OutputError, SettingsError, plural
from ..basics.outputs import claim_folder
from ..data.photos import has_photo_suffix
from ..graders import is_export
from ..records import REJECT
from ..runs.staging import MARKER

FORMATS = ("competition", "label-studio")
REJECTS = "reject"  # the folder of the photos that are not mangoes, beside images/
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class LabelsWritten:
    folder: Path
    photos: int
    grades: list[str]
    missing: list[dict[str, Any]] = field(default_factory=list)  # rows whose photo is gone
    by_grade: dict[str, int] = field(default_factory=dict)
    rejects: int = 0  # photos copied to reject/: not mangoes

    @property
    def reject_folder(self) -> Path:
        return self.folder / REJECTS

    def train_command(self) -> str:
        f = self.folder
        return (f"mangograde train {f / 'images'} --labels {f / 'labels.csv'} "
                f"--groups {f / 'groups.csv'} --grades {','.join(self.grades)}")  # fmt: skip


def _kept(photos: Path, sha256: str) -> Path | None:
    found = sorted(photos.glob(f"{sha256}.*"))
    return next((p for p in found if p.is_file() and not p.name.startswith(".")), None)


def file_name(row: dict[str, Any], suffix: str) -> str:
    """The copy's name: the grading id first (``000039-photo.jpg``), so an annotation made
    on it maps back to its grading (``data corrections``)."""
    stem = _UNSAFE.sub("_", Path(row["photo"]).stem).strip("._")[:60] or "photo"
    return f"{row['grading_id']:06d}-{stem}{suffix}"


def _label_studio(rows: list[tuple[str, dict[str, Any]]], folder: str) -> list[dict]:
    """Tasks whose images Label Studio serves from a Local Storage: started with
    LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT the folder that holds ``folder`` (the labels
    folder), an image is ``/data/local-files/?d=FOLDER/images/NAME``."""
    where = quote(f"{folder}/images", safe="/")
    return [
        {
            "data": {"image": f"/data/local-files/?d={where}/{name}",
                     "grading_id": row["grading_id"], "lot": row["lot"],
                     "fruit": row["fruit"] or "", "model_grade": row["graded"]},
            "annotations": [{
                "result": [{"from_name": "grade", "to_name": "image", "type": "choices",
                            "value": {"choices": [row["grade"]]}}],
                "meta": {"operator": row["operator"], "time": row["time"].isoformat()},
            }],
        }
        for name, row in rows
    ]  # fmt: skip


def _label_config(grades: list[str]) -> str:
    """One choice a grade, and "not a mango", exported as ``reject`` (``data corrections``
    keeps it as the operator's answer; ``--labels`` leaves such photos out)."""
    choices = "\n".join([*(f'    <Choice value="{g}"/>' for g in grades),
                         f'    <Choice value="not a mango" alias="{REJECT}"/>'])  # fmt: skip
    return (f'<View>\n  <Image name="image" value="$image"/>\n  <Choices name="grade" '
            f'toName="image" choice="single">\n{choices}\n  </Choices>\n</View>\n')  # fmt: skip


def claim_labels_folder(out_dir: Path, photos: Path) -> Path:
    """Refuse an ``--out`` inside a folder it must stay out of: the kept photos it copies
    from (a later ``predict`` there would grade the copies too), or a run or export folder
    (their files belong to them)."""
    claim_folder(out_dir, "--out", inputs=[photos])
    for folder in Path(out_dir).resolve().parents:
        if (
            (folder / MARKER).is_file()
            or is_export(folder)
            or ((folder / "config.yaml").is_file() and (folder / "model").is_dir())
        ):
            raise OutputError(
                f"--out {out_dir} is inside {folder}, a run (or export) folder: its files "
                "belong to it. Write the labels to a new folder outside it."
            )
    parent = Path(out_dir).resolve().parent
    beside = sorted(p.name for p in parent.iterdir() if p.is_file() and has_photo_suffix(p.name))
    if beside:
        raise OutputError(
            f"--out {out_dir} is inside {parent}, a folder of photos ({beside[0]}, ...): a "
            f"later predict or train on {parent} would read the copied photos too. Write the "
            "labels to a folder that holds no photos."
        )
    return out_dir


def write_labels(
    rows: list[dict[str, Any]], photos: Path, out_dir: Path, fmt: str = "competition"
) -> LabelsWritten:
    """Copy the kept photos of ``rows`` (from :func:`mangograde.records.labelled`) from
    ``photos`` (serve's ``--keep-photos``) into a new folder ``out_dir`` with their labels,
    the rejects (not mangoes) into its ``reject/``, listed in ``rejects.csv``; photos no
    longer kept are listed in ``missing`` (and in ``missing.csv``)."""
    if fmt not in FORMATS:
        raise SettingsError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if not photos.is_dir():
        raise SettingsError(f"--photos {photos}: no such folder; give serve's --keep-photos.")
    claim_labels_folder(out_dir, photos)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(f"--out {out_dir} already exists: give a new folder (labels are "
                          "written whole, never into or over another folder).")  # fmt: skip
    grades = list(rows[0]["grades"]) if rows else []
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (stage / "images").mkdir()
        written: list[tuple[str, dict[str, Any]]] = []
        rejected: list[tuple[str, dict[str, Any]]] = []
        missing = []
        for row in rows:
            source = _kept(photos, row["sha256"])
            if source is None:
                missing.append(row)
                continue
            name = file_name(row, source.suffix)
            is_reject = row["grade"] == REJECT
            if is_reject and not rejected:
                (stage / REJECTS).mkdir()
            shutil.copyfile(source, stage / (REJECTS if is_reject else "images") / name)
            (rejected if is_reject else written).append((name, row))
        if not written and not rejected:
            raise SettingsError(
                f"None of the {plural(len(rows), 'corrected photo')} is still kept in "
                f"{photos} (the size limit of --keep-photos removes the oldest): nothing to write."
            )
        _write_csv(stage / "labels.csv", ["image_id", "label"],
                   [[n, r["grade"]] for n, r in written])  # fmt: skip
        _write_csv(stage / "groups.csv", ["image", "group"],
                   [[n, f"{r['lot']}/{r['fruit'] or n}"] for n, r in written])  # fmt: skip
        _write_csv(stage / "corrections.csv",
                   ["image_id", "grading_id", "lot", "fruit", "model_grade", "grade", "operator",
                    "time"],
                   [[n, r["grading_id"], r["lot"], r["fruit"] or "", r["graded"], r["grade"],
                     r["operator"], _iso(r["time"])] for n, r in written])  # fmt: skip
        if rejected:
            _write_csv(stage / "rejects.csv",
                       ["image_id", "grading_id", "lot", "fruit", "model_grade", "operator",
                        "time"],
                       [[n, r["grading_id"], r["lot"], r["fruit"] or "", r["graded"],
                         r["operator"], _iso(r["time"])] for n, r in rejected])  # fmt: skip
        if missing:
            _write_csv(stage / "missing.csv", ["grading_id", "photo", "sha256", "lot", "grade"],
                       [[r["grading_id"], r["photo"], r["sha256"], r["lot"], r["grade"]]
                        for r in missing])  # fmt: skip
        if fmt == "label-studio":
            tasks = _label_studio(written, out_dir.name)
            (stage / "tasks.json").write_text(json.dumps(tasks, indent=1, ensure_ascii=False),
                                              encoding="utf-8")  # fmt: skip
            (stage / "label_config.xml").write_text(_label_config(grades), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.rename(stage, out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    counts = {g: sum(r["grade"] == g for _, r in written) for g in grades}
    return LabelsWritten(out_dir, len(written), grades, missing, counts, len(rejected))


def _iso(when: datetime) -> str:
    return when.isoformat()


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """Names a spreadsheet would take for formulas (an operator named ``=2+3``) are
    written as text; ``train`` and ``predict`` read them back exactly (``data/csvfile``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(text_row(header))
        writer.writerows(text_row(row) for row in rows)
