"""Label Studio's exports read as labels, as they come: JSON (a list of tasks, each with its
``data`` and ``annotations``), JSON_MIN (one flat object an annotation) and CSV (one row an
annotation, with Label Studio's ``annotator``, ``annotation_id`` and ``lead_time`` columns).

The image URL names the photo: its file name (``/data/local-files/?d=labels/images/x.jpg``
is ``x.jpg``; an upload, ``/data/upload/3/1a2b3c4d-x.jpg``, loses the prefix Label Studio
put on it). The choice is the grade; one photo a task. Several annotations of a task give
one grade by ``latest`` (the last updated) or ``majority`` (a tie is named, never guessed);
tasks with no annotation, and cancelled annotations, are counted and named in a notice.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..basics.answers import REJECT
from ..basics.errors import DatasetError, listing, plural
from .csvfile import header, read_rows, read_text
from .grade_names import DEFAULT_GRADES, known_order
from .photos import Found
from .problems import Problems

ANNOTATIONS = ("latest", "majority")
FORMATS = "Label Studio's JSON, JSON_MIN or CSV export"
CHOICE_KEYS = ("grade", "choice", "choices", "label", "class")
IMAGE_KEYS = ("image", "img", "photo", "url")
CSV_MARKS = frozenset({"annotator", "annotation_id", "lead_time"})
META_KEYS = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at",
                       "lead_time", "data", "annotations", "predictions", "drafts",
                       "meta"})  # fmt: skip
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Vote:
    """One annotation of a task: who chose what, and when."""

    annotation: str  # Label Studio's annotation id ("" where the export gives none)
    annotator: str
    choice: str | None  # None: the annotation chose nothing
    time: str = ""  # updated_at (or created_at) as exported
    cancelled: bool = False
    several: tuple[str, ...] = ()  # an annotation that ticked more than one grade

    @property
    def when(self) -> datetime:
        try:
            found = datetime.fromisoformat(self.time.replace("Z", "+00:00"))
        except ValueError:
            return _NEVER
        return found if found.tzinfo else found.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Task:
    id: str  # Label Studio's task id (its place in the file where it has none)
    url: str
    name: str  # the photo's file name
    data: dict[str, Any]  # the task's data fields (data labels adds grading_id, lot, fruit)
    votes: tuple[Vote, ...]

    @property
    def where(self) -> str:
        return f"task {self.id} ({self.name})"


@dataclass(frozen=True)
class Chosen:
    """A task's grade, and the annotations that gave it (latest: one)."""

    task: Task
    grade: str
    votes: tuple[Vote, ...]

    @property
    def annotators(self) -> str:
        return ", ".join(dict.fromkeys(v.annotator for v in self.votes))

    @property
    def note(self) -> str:
        ids = [v.annotation for v in self.votes if v.annotation]
        word = "annotation" if len(ids) == 1 else "annotations"
        return f"from Label Studio, task {self.task.id}, {word} {', '.join(ids) or '-'}"


@dataclass(frozen=True)
class Export:
    path: Path
    format: str  # JSON, JSON_MIN or CSV
    tasks: tuple[Task, ...]


def check_annotations(mode: str) -> str:
    if mode not in ANNOTATIONS:
        raise DatasetError(
            f"--annotations must be latest or majority, not {mode!r}: latest takes the last "
            "updated annotation of a task, majority the grade most annotators chose."
        )
    return mode


def is_label_studio(path: Path) -> bool:
    """Whether ``path`` is to be read as a Label Studio export: any .json file (one from
    another tool is refused by :func:`read_export`, saying what it looks like), or a CSV
    whose header holds Label Studio's own columns."""
    if path.suffix.lower() == ".json":
        return True
    if not path.is_file():
        return False
    return bool({c.lower() for c in header(path)} & CSV_MARKS)


def photo_name(url: str) -> str:
    """The photo's file name in a task's image URL."""
    parts = urlsplit(url.strip())
    target = parse_qs(parts.query).get("d", [None])[0] if "local-files" in parts.path else None
    path = target if target is not None else unquote(parts.path)
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    upload = _UPLOAD_PREFIX.match(name) if "/data/upload/" in parts.path else None
    return upload.group(1) if upload else name


def read_export(path: Path) -> Export:
    """The tasks of a Label Studio export, or a :class:`DatasetError` saying what the file
    looks like and what was expected."""
    if not path.is_file():
        raise DatasetError(f"Label file {path} does not exist.")
    if path.suffix.lower() != ".json":
        return _from_csv(path)
    text = read_text(path)
    try:
        found = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); expected "
            f"{FORMATS} (a list of tasks). Export the project again, or give a label CSV."
        ) from None
    if not isinstance(found, list):
        raise DatasetError(f"{path} {_looks_like(found)}; expected {FORMATS}: a list of tasks "
                           "such as [{\"id\": 1, \"data\": {\"image\": ...}, \"annotations\": "
                           "[...]}]. Export the project from Label Studio.")  # fmt: skip
    if not found:
        raise DatasetError(f"{path} lists no tasks: export the Label Studio project once "
                           "its tasks are imported and labelled.")  # fmt: skip
    if not all(isinstance(item, dict) for item in found):
        kinds = sorted({type(item).__name__ for item in found if not isinstance(item, dict)})
        raise DatasetError(f"{path} is a JSON list of {', '.join(kinds)}, not of tasks; "
                           f"expected {FORMATS}.")  # fmt: skip
    if any("data" in item for item in found):
        return Export(path, "JSON", tuple(_json_task(item, i) for i, item in enumerate(found, 1)))
    return _from_flat(path, "JSON_MIN", found)


def _looks_like(found: Any) -> str:
    if isinstance(found, dict):
        keys = sorted(found, key=str)
        if {"images", "annotations", "categories"} <= set(keys):
            what = "looks like a COCO file (images, annotations, categories)"
        else:
            what = f"holds one JSON object (keys {listing([str(k) for k in keys]) or 'none'})"
        return what
    return f"holds a JSON {type(found).__name__}"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _annotator(value: Any) -> str:
    if isinstance(value, dict):
        name = " ".join(_text(value.get(k)) for k in ("first_name", "last_name")).strip()
        return _text(value.get("email")) or name or f"Label Studio user {_text(value.get('id'))}"
    text = _text(value)  # a user's id: an int in JSON, its digits in a CSV
    return f"Label Studio user {text}" if text.isdigit() else text or "Label Studio"


def _choices(value: Any) -> tuple[str, ...]:
    """A choice as exported: ``"B"``, ``["B"]``, ``{"choices": ["B"]}`` (or its JSON text)."""
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict):
        value = value.get("choices", [])
    if isinstance(value, list):
        return tuple(_text(v) for v in value if _text(v))
    return (_text(value),) if _text(value) else ()


def _vote(annotation: str, annotator: Any, choices: tuple[str, ...], time: str,
          cancelled: bool = False) -> Vote:  # fmt: skip
    return Vote(annotation, _annotator(annotator), choices[0] if len(choices) == 1 else None,
                time, cancelled, choices if len(choices) > 1 else ())  # fmt: skip


def _image(fields: dict[str, Any]) -> str:
    for key in IMAGE_KEYS:
        if isinstance(fields.get(key), str) and fields[key].strip():
            return fields[key]
    for value in fields.values():
        if isinstance(value, str) and value.strip().startswith(("/data/", "http", "s3:", "gs:")):
            return value
    return ""


def _json_task(item: dict[str, Any], place: int) -> Task:
    data = item.get("data") if isinstance(item.get("data"), dict) else {}
    url = _image(data)
    votes = []
    for annotation in item.get("annotations") or []:
        if not isinstance(annotation, dict):
            continue
        results = [r for r in annotation.get("result") or []
                   if isinstance(r, dict) and r.get("type") == "choices"]  # fmt: skip
        picked = next((r for r in results if r.get("from_name") == "grade"), None)
        picked = picked or (results[0] if results else {})
        value = picked.get("value") if isinstance(picked.get("value"), dict) else {}
        votes.append(_vote(_text(annotation.get("id")), annotation.get("completed_by"),
                           _choices(value.get("choices", [])),
                           _text(annotation.get("updated_at") or annotation.get("created_at")),
                           bool(annotation.get("was_cancelled"))))  # fmt: skip
    task_id = _text(item.get("id")) or f"#{place}"
    return Task(task_id, url, photo_name(url) if url else "", dict(data), tuple(votes))


def _choice_key(keys: set[str]) -> str | None:
    return next((k for k in CHOICE_KEYS if k in keys), None)


def _from_flat(path: Path, fmt: str, items: list[dict[str, Any]]) -> Export:
    """JSON_MIN objects or CSV rows: one an annotation (a task without one: its data only)."""
    keys = {str(k) for item in items for k in item}
    choice = _choice_key({k.lower() for k in keys})
    if not any(_image(item) for item in items):
        raise DatasetError(
            f"{path} is a list of objects (keys {listing(sorted(keys))}) that name no image: "
            f"expected {FORMATS}, whose tasks carry an image URL (data field image) and the "
            "grade chosen (the choices named grade, as label_config.xml names them)."
        )
    tasks: dict[str, list[dict[str, Any]]] = {}
    for place, item in enumerate(items, 1):
        task_id = _text(item.get("id")) or _image(item) or f"#{place}"
        tasks.setdefault(task_id, []).append(item)
    found = []
    for task_id, rows in tasks.items():
        url = _image(rows[0])
        votes = []
        for row in rows:
            lowered = {str(k).lower(): v for k, v in row.items()}
            annotated = any(_text(lowered.get(k)) for k in ("annotation_id", "annotator"))
            picked = _choices(lowered.get(choice)) if choice else ()
            if annotated or picked:
                votes.append(_vote(_text(lowered.get("annotation_id")), lowered.get("annotator"),
                                   picked, _text(lowered.get("updated_at")
                                                 or lowered.get("created_at"))))  # fmt: skip
        data = {k: v for k, v in rows[0].items() if str(k).lower() not in META_KEYS}
        found.append(Task(task_id, url, photo_name(url) if url else "", data, tuple(votes)))
    return Export(path, fmt, tuple(found))


def _from_csv(path: Path) -> Export:
    rows = read_rows(path)
    if len(rows) < 2:
        raise DatasetError(f"{path} holds Label Studio's CSV header and no task: export the "
                           "project once its tasks are labelled.")  # fmt: skip
    header = rows[0][1]
    items = [dict(zip(header, cells, strict=False)) for _, cells in rows[1:]]
    return _from_flat(path, "CSV", items)


def choose(export: Export, mode: str = "latest") -> tuple[list[Chosen], list[str]]:
    """Each annotated task's grade by ``mode`` (``latest`` or ``majority``), and notices
    naming the tasks left out (no annotation, cancelled ones). Raises a
    :class:`DatasetError` naming every task without an image, with several grades ticked
    in one annotation, or (majority) split evenly."""
    check_annotations(mode)
    problems = Problems(f"the Label Studio {export.format} export {export.path}")
    chosen, unannotated, cancelled = [], [], []
    no_image, several, ties = [], [], []
    for task in export.tasks:
        if not task.name:
            no_image.append(f"task {task.id}")
            continue
        votes = []
        for vote in task.votes:
            if vote.cancelled:
                cancelled.append(f"{task.where} annotation {vote.annotation} ({vote.annotator})")
            elif vote.several:
                several.append(f"{task.where} annotation {vote.annotation}: "
                               f"{', '.join(vote.several)}")  # fmt: skip
            elif vote.choice is not None:
                votes.append(vote)
        if not votes:
            unannotated.append(task.where)
            continue
        if mode == "latest":
            order = {id(v): i for i, v in enumerate(votes)}
            last = max(votes, key=lambda v: (v.when, _number(v.annotation), order[id(v)]))
            chosen.append(Chosen(task, last.choice or "", (last,)))
            continue
        counts = Counter(v.choice for v in votes).most_common()
        top = [g for g, n in counts if n == counts[0][1]]
        if len(top) > 1:
            split = "; ".join(f"{g} ({', '.join(v.annotator for v in votes if v.choice == g)})"
                              for g in top)  # fmt: skip
            ties.append(f"{task.where}: {split}")
            continue
        chosen.append(Chosen(task, top[0], tuple(v for v in votes if v.choice == top[0])))
    if no_image:
        problems.add(f"{plural(len(no_image), 'task')} with no image URL in its data: "
                     f"{listing(no_image)}; one photo a task (data field image)")  # fmt: skip
    if several:
        problems.add(f"{plural(len(several), 'annotation')} choosing more than one grade: "
                     f"{listing(several)}; one grade a photo")  # fmt: skip
    if ties:
        problems.add(f"{plural(len(ties), 'task')} with no majority, the annotators split "
                     f"evenly: {listing(ties)}. Settle them in Label Studio, or give "
                     "--annotations latest")  # fmt: skip
    problems.raise_if_any()
    notices = []
    if unannotated:
        notices.append(f"{plural(len(unannotated), 'task')} of {export.path.name} with no "
                       f"annotation, left out: {listing(unannotated)}")  # fmt: skip
    if cancelled:
        notices.append(f"{plural(len(cancelled), 'cancelled annotation')} in "
                       f"{export.path.name}, not counted: {listing(cancelled)}")  # fmt: skip
    if not chosen:
        raise DatasetError(
            f"{export.path} holds {plural(len(export.tasks), 'task')} and none is annotated"
            f"{' (' + '; '.join(notices) + ')' if notices else ''}: label them in Label "
            "Studio, then export again."
        )
    return chosen, notices


def _number(text: str) -> int:
    return int(text) if text.isdigit() else -1


def from_export(
    root: Path,
    path: Path,
    grades: tuple[str, ...] | None,
    unordered: bool = False,
    annotations: str = "latest",
) -> Found:
    """The photos under ``root`` that a Label Studio export labels (see the module)."""
    from .label_csv import labelled_photos

    export = read_export(path)
    chosen, notices = choose(export, annotations)
    rejected = [c.grade.strip().lower() == REJECT for c in chosen]
    if any(rejected):
        rejects = [c for c, no in zip(chosen, rejected, strict=True) if no]
        chosen = [c for c, no in zip(chosen, rejected, strict=True) if not no]
        where = listing([c.task.where for c in rejects])
        notices.append(f"{plural(len(rejects), 'task')} of {path.name} answered {REJECT!r} (not "
                       f"a mango), left out of the grades: {where}. Give such photos to "
                       "train as --reject-photos DIR.")  # fmt: skip
        if not chosen:
            raise DatasetError(f"Every annotated task of {path} answered {REJECT!r} (not a "
                               "mango): there is no grade to learn from. Give them as "
                               "--reject-photos DIR, and labels of graded photos.")  # fmt: skip
    if grades is None and not unordered:
        grades = known_order({c.grade for c in chosen}) or DEFAULT_GRADES
    entries: list[tuple[int | str, str, str]] = [(c.task.id, c.task.name, c.grade) for c in chosen]
    problems = Problems(f"the labels in {path} (Label Studio's {export.format} export) for "
                        f"photos in {root}")  # fmt: skip
    return labelled_photos(root, path, entries, grades, problems, ("task", "tasks"),
                           tuple(notices))  # fmt: skip
