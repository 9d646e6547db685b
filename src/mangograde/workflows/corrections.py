"""``mangograde data corrections``: the grades chosen in Label Studio appended to the records
as corrections, so the next ``data labels`` includes them.

A task's photo names its grading: ``data labels`` names each copy after the grading's id
and photo (``000039-mango.jpg``), and a name that does not map back to the same photo in
the records is named and counted, nothing written for it. Each correction's operator is
the annotator and its note names the task and annotation (``from Label Studio, task 12,
annotation 34``). Nothing is appended twice: not an annotation already appended with the
same grade, not a grade that already stands, not over a correction made in the records
after the annotation. Every problem of the export is found before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..basics.errors import DatasetError, MangogradeError, listing, plural
from ..data.label_studio import Chosen, choose, read_export
from ..data.problems import Problems
from ..records import REJECT, Correction, LotClosed, Store, check_name, correct
from ..records.corrections import standing
from ..records.names import NAME_LIMIT
from .labels import file_name

_GRADING = re.compile(r"^(\d{6,})-")


@dataclass
class Appended:
    """What ``data corrections`` did with each annotated task of an export."""

    added: list[tuple[Chosen, Correction]] = field(default_factory=list)
    done: list[Chosen] = field(default_factory=list)  # this annotation was appended before
    same: list[Chosen] = field(default_factory=list)  # its grade already stands
    newer: list[Chosen] = field(default_factory=list)  # corrected in the records since
    unknown: list[Chosen] = field(default_factory=list)  # photos not in the records
    refused: list[tuple[Chosen, str]] = field(default_factory=list)  # e.g. the lot is closed
    notices: list[str] = field(default_factory=list)
    format: str = ""


def grading_of(name: str) -> int | None:
    """The grading id a copy made by ``data labels`` carries in its name."""
    found = _GRADING.match(name)
    return int(found.group(1)) if found else None


def _match(chosen: list[Chosen], found: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Each task's grading (by its place in ``chosen``), where the name maps back to it."""
    matched = {}
    for i, c in enumerate(chosen):
        grading_id = grading_of(c.task.name)
        row = found.get(grading_id) if grading_id is not None else None
        if row is not None and file_name(row, Path(c.task.name).suffix) == c.task.name:
            matched[i] = row
    return matched


def append_corrections(store: Store, export: Path, annotations: str = "latest") -> Appended:
    """Append the grades of a Label Studio ``export`` to ``store`` as corrections (see the
    module). Raises a :class:`DatasetError` before anything is written for an export that
    is not Label Studio's, a grade the grading's run does not have, an annotator's name
    that cannot be kept, or an export none of whose photos are in the records."""
    read = read_export(export)
    chosen, notices = choose(read, annotations)
    wanted = [g for g in (grading_of(c.task.name) for c in chosen) if g is not None]
    matched = _match(chosen, standing(store, wanted))
    result = Appended(notices=notices, format=read.format)
    problems = Problems(f"the corrections in {export} (Label Studio's {read.format} export)")
    wrong_grade, bad_name = [], []
    for i, c in enumerate(chosen):
        row = matched.get(i)
        if row is None:
            result.unknown.append(c)
        elif c.grade not in row["grades"] and c.grade != REJECT:
            wrong_grade.append(f"{c.task.where}: {c.grade!r} (grades {', '.join(row['grades'])}, "
                               f"or {REJECT!r} for not a mango)")  # fmt: skip
        else:
            try:
                check_name(c.annotators[:NAME_LIMIT], "operator")
            except MangogradeError as exc:
                bad_name.append(f"{c.task.where}: {exc}")
    if wrong_grade:
        problems.add(f"{plural(len(wrong_grade), 'task')} chose a grade the grading's run does "
                     f"not have: {listing(wrong_grade)}; fix them in Label Studio")  # fmt: skip
    if bad_name:
        problems.add(f"{plural(len(bad_name), 'annotator')} whose name cannot be kept as an "
                     f"operator: {listing(bad_name)}")  # fmt: skip
    problems.raise_if_any()
    if not matched:
        raise DatasetError(
            f"None of the {plural(len(chosen), 'photo')} that {export} grades is in "
            f"{store.where}: {listing([c.task.name for c in chosen])}. Give the --db whose "
            "`data labels` folder was imported into Label Studio (its photos are named "
            "GRADING-PHOTO, e.g. 000039-mango.jpg)."
        )
    for i, row in sorted(matched.items()):
        _append(store, chosen[i], row, result)
    return result


def _append(store: Store, chosen: Chosen, row: dict[str, Any], result: Appended) -> None:
    corrections: list[Correction] = row["corrections"]
    if any(k.note == chosen.note and k.grade == chosen.grade for k in corrections):
        result.done.append(chosen)
        return
    stands = corrections[-1].grade if corrections else row["graded"]
    if stands == chosen.grade:
        result.same.append(chosen)
        return
    annotated = max(v.when for v in chosen.votes)
    if corrections and annotated.year > 1 and corrections[-1].time > annotated:
        result.newer.append(chosen)
        return
    try:
        made = correct(store, row["grading_id"], chosen.grade, chosen.annotators[:NAME_LIMIT],
                       note=chosen.note)  # fmt: skip
    except LotClosed as exc:  # this lot is closed; any other failure stops the run
        result.refused.append((chosen, str(exc)))
        return
    result.added.append((chosen, made))
