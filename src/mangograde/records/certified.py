"""A lot as its certificate states it: the summary, the to-check list and the close that
stands, made from the very rows the certificate hashes (:class:`~.digest.LotRecords`).
What it states is then what it hashes, read in one go, and a plain SQLite file needs no
SQLAlchemy. Each is what :func:`~.summary.lot_summary`, :func:`~.corrections.to_check`
and :func:`~.closing.closing_of` give from the database (tested equal on SQLite and
PostgreSQL)."""

from __future__ import annotations

from typing import Any

from .digest import LotRecords
from .lot_state import CLOSED, LotEvent
from .names import REJECT, as_utc
from .summary import LotSummary, best_first

_FIRST = {"not-a-fruit": 0, "unfamiliar": 1}  # the to-check list's order, then least sure


def _standing(records: LotRecords) -> dict[int, dict[str, Any]]:
    """Grading id -> its latest correction (the corrections come oldest first)."""
    return {c["grading_id"]: c for c in records.corrections}


def summary_of(records: LotRecords) -> LotSummary:
    """The lot summary, a row a fruit (``lot_summary(..., detail=True)``)."""
    lot = records.lot
    found = LotSummary(lot["name"], lot["created"], lot["note"], len(records.gradings), None)
    latest = _standing(records)
    grades: dict[str, None] = {}
    seen_runs: set[str] = set()
    mix: dict[str, int] = {}
    photos: dict[int, list[str]] = {}  # fruit grading id -> its photos' standing answers
    for g in records.gradings:  # by id
        if g["run"] not in seen_runs:  # a run's first grading keeps its grades' order
            seen_runs.add(g["run"])
            grades.update(dict.fromkeys(g["probabilities"] or {}))
        corrected = latest.get(g["id"])
        final = corrected["grade"] if corrected else g["grade"]
        if g["fruit_grading_id"] is not None:
            photos.setdefault(g["fruit_grading_id"], []).append(final)
        if final == REJECT:
            found.rejects += 1
        else:
            mix[final] = mix.get(final, 0) + 1
        if g["check"] and corrected is None:
            key = g["reason"] or "unsure"
            found.checks[key] = found.checks.get(key, 0) + 1
        found.unfamiliar += g["reason"] == "unfamiliar"
        model = f"{g['run']} ({g['model_sha256'][:12]})"
        found.models[model] = found.models.get(model, 0) + 1
        if found.last is None or g["time"] > found.last:
            found.last = g["time"]
    found.grades = tuple(grades)
    found.mix = best_first(mix, found.grades)
    found.checks = dict(sorted(found.checks.items()))
    found.corrections = len(records.corrections)
    fruit_mix: dict[str, int] = {}
    for f in records.fruits:  # by id
        own = photos.get(f["id"], [])
        rejected = (bool(own) and all(p == REJECT for p in own)) or f["grade"] == REJECT
        if rejected:
            found.fruit_rejects += 1
        else:
            fruit_mix[f["grade"]] = fruit_mix.get(f["grade"], 0) + 1
        found.fruits.append({"fruit": f["fruit"], "grade": REJECT if rejected else f["grade"],
                             "check": bool(f["check"]), "reason": f["reason"] or "",
                             "time": f["time"], "photos": len(own)})  # fmt: skip
    found.fruit_mix = best_first(fruit_mix, found.grades)
    closed = closing_in(records)
    if closed is not None:
        found.closed_by, found.closed_at = closed.operator, closed.time
    return found


def to_check_in(records: LotRecords) -> list[dict[str, Any]]:
    """The photos left to check by hand, in the to-check list's order."""
    latest = _standing(records)
    found = [
        {"grading_id": g["id"], "time": g["time"], "photo": g["photo"], "sha256": g["sha256"],
         "fruit": g["fruit"] or None, "grade": g["grade"], "reason": g["reason"] or "unsure",
         "familiarity": g["familiarity"], "top_probability": max(g["probabilities"].values()),
         "probabilities": g["probabilities"], "corrected_grade": None, "corrected_by": None}
        for g in records.gradings if g["check"] and g["id"] not in latest
    ]  # fmt: skip
    found.sort(key=lambda r: (_FIRST.get(r["reason"], 2), r["top_probability"], r["grading_id"]))
    return found


def closing_in(records: LotRecords) -> LotEvent | None:
    """The close that stands: the lot's latest event, when it is a close."""
    last = records.events[-1] if records.events else None
    if last is None or last["kind"] != CLOSED:
        return None
    return LotEvent(last["kind"], last["operator"], as_utc(last["time"]), last["why"])
