"""The comparison report: one self-contained HTML file (inline CSS, images as data URIs)."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..basics.atomic import write_text
from ..evaluation.metrics import METRIC_INFO, format_metric, metric_words
from .figures import metric_intervals
from .records import Comparison, RunSummary

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2a1f;
margin:0;background:#f6f7f2}
header{background:#24452b;color:#fff;padding:22px 32px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;opacity:.85}
main{padding:8px 32px 40px;max-width:1400px}
section{background:#fff;border-radius:10px;padding:16px 22px;margin:18px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}
h2{font-size:19px;margin:4px 0 12px;color:#24452b}h3{font-size:15px;margin:8px 0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;text-align:right;border-bottom:1px solid #e4e7df}
th{background:#eef2ea;font-weight:600}th[title]{cursor:help;text-decoration:underline dotted}
td:first-child,th:first-child{text-align:left}
td.best{font-weight:700;background:#e3f1e0}small{color:#667}
.row{display:flex;flex-wrap:wrap;gap:22px;align-items:flex-start}
.card{border:1px solid #e4e7df;border-radius:8px;padding:10px 12px;background:#fff}
table.cm td{width:54px;text-align:center;border:1px solid #fff;line-height:1.15}
table.cm th{text-align:center}
.cm .n{font-weight:700;font-size:14px}.cm .p{font-size:11px}
img{max-width:100%;height:auto}.gallery img{max-width:520px}
.notice{background:#fff6d8;border-left:4px solid #e0b100;padding:8px 12px;margin:12px 0}
.warning{background:#fde2e0;border-left:6px solid #c0261b;padding:10px 14px;margin:18px 0;
font-size:16px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px}dt{font-weight:600}
footer{color:#667;font-size:13px;padding:0 32px 30px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{encoded}">'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "&ndash;"
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _best(values: Sequence[float | None], higher: bool, rows: Sequence[int]) -> set[int]:
    """Which of ``rows`` (whose ``values`` these are) hold the best value."""
    finite = [(v, i) for v, i in zip(values, rows, strict=True) if v is not None and v == v]
    if len(finite) < 2:
        return set()
    target = max(finite)[0] if higher else min(finite)[0]
    return {i for v, i in finite if v == target}


@dataclass
class _Column:
    title: str
    meaning: str
    cells: list[str]
    values: list[float | None]  # to mark the best run; all None: nothing is marked
    higher_is_better: bool = True


def _metric_column(name: str, runs: Sequence[RunSummary], grades: Sequence[str]) -> _Column:
    _, _, higher, fmt = METRIC_INFO[name]
    title, meaning = metric_words(name, grades)
    meaning = _meaning(meaning, runs)
    cells, values = [], []
    for summary in runs:
        m = summary.evaluation["metrics"][name]
        interval = f"<br><small>[{_fmt(fmt, m['low'])}, {_fmt(fmt, m['high'])}]</small>"
        cells.append(_fmt(fmt, m["value"]) + (interval if m["low"] is not None else ""))
        values.append(m["value"])
    return _Column(title, meaning, cells, values, higher)


def _cost_columns(runs: Sequence[RunSummary]) -> list[_Column]:
    per_photo = [s.per_photo_ms for s in runs]
    return [
        _Column(
            "Photos",
            "Photos scored: the run's held-out photos, or those of a saved evaluation.",
            [str(s.evaluation["n_photos"]) for s in runs],
            [None] * len(runs),
        ),
        _Column(
            "Training time",
            "Features and fitting of all folds, decoding excluded (after a --resume, only "
            "the epochs trained since).",
            [_duration(s.train_s) + (" (resumed)" if s.resumed else "") for s in runs],
            [s.train_s for s in runs],
            False,
        ),
        _Column(
            "Time per photo",
            "One fold model, features included, decoding excluded; `predict` with all K fold "
            "models costs K times this (or use --fold).",
            [
                _fmt("{:.2f} ms", ms)
                + (f"<br><small>x{s.n_models} folds</small>" if s.n_models > 1 else "")
                for s, ms in zip(runs, per_photo, strict=True)
            ],
            per_photo,
            False,
        ),
        _Column(
            "Model size",
            "All fold models on disk.",
            [_size(s.model_bytes) for s in runs],
            [s.model_bytes for s in runs],
            False,
        ),
    ]


def _summary(comparison: Comparison) -> str:
    runs = comparison.runs
    present = [m for m in METRIC_INFO if all(m in s.evaluation["metrics"] for s in runs)]
    columns = [_metric_column(m, runs, comparison.grades) for m in present]
    columns += _cost_columns(runs)
    head = "".join(f'<th title="{_e(c.meaning)}">{_e(c.title)}</th>' for c in columns)
    # The best is marked only among rows scored on the same photos.
    same = [[j for j, t in enumerate(runs) if t.scored_on == s.scored_on] for s in runs]
    best = [
        {
            i
            for i in range(len(runs))
            if i in _best([c.values[j] for j in same[i]], c.higher_is_better, same[i])
        }
        for c in columns
    ]
    rows = []
    for i, s in enumerate(runs):
        cells = [f"<td><b>{_e(s.label)}</b><br><small>{_e(s.kind)}</small></td>"]
        for column, winners in zip(columns, best, strict=True):
            cls = ' class="best"' if i in winners else ""
            cells.append(f"<td{cls}>{column.cells[i]}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="summary"><tr><th>Run</th>' + head + "</tr>" + "".join(rows) + "</table>"
        "<p><small>Brackets: 95% bootstrap interval. Bold: the best of the runs. Hover a "
        "column title for its meaning.</small></p>"
    )


def _labels_line(comparison: Comparison) -> str:
    """``grades A > B > C``, or ``classes x, y, z`` for labels with no order."""
    if all(s.ordered for s in comparison.runs):
        return "grades " + " > ".join(comparison.grades)
    return "classes " + ", ".join(comparison.grades)


def _confusion(
    summary: RunSummary, grades: Sequence[str], record: dict[str, Any] | None = None
) -> str:
    record = summary.evaluation if record is None else record
    counts = record["confusion"]
    shares = record["confusion_normalised"]
    head = "".join(f"<th>{_e(g)}</th>" for g in grades)
    rows = []
    for i, grade in enumerate(grades):
        cells = []
        for j in range(len(grades)):
            share = shares[i][j]
            # green on the diagonal, red off it; darker = larger share of the true grade
            colour = (46, 125, 50) if i == j else (198, 40, 40)
            text = "#fff" if share > 0.55 else "#1d2a1f"
            background = f"rgba({colour[0]},{colour[1]},{colour[2]},{0.08 + 0.85 * share:.2f})"
            cells.append(
                f'<td style="background:{background};color:{text}"><span class="n">'
                f'{counts[i][j]}</span><br><span class="p">{share:.0%}</span></td>'
            )
        rows.append(f"<tr><th>{_e(grade)}</th>{''.join(cells)}</tr>")
    # A run of other grade names (matched by rank) keys its scores by its own names.
    per_grade = dict(zip(grades, record["per_grade"].values(), strict=True))
    scores = "".join(
        f"<tr><td>{_e(g)}</td>"
        + "".join(
            f"<td>{_fmt('{:.3f}', per_grade[g][k])}</td>" for k in ("precision", "recall", "f1")
        )
        + f"<td>{per_grade[g]['support']}</td></tr>"
        for g in grades
    )
    unit = "Photos" if record is summary.evaluation else "Fruits"
    return (
        f'<div class="card"><h3>{_e(summary.label)}</h3>'
        f'<table class="cm"><tr><th>true &darr; / predicted &rarr;</th>{head}</tr>'
        f"{''.join(rows)}</table>"
        f"<table><tr><th>Grade</th><th>Precision</th><th>Recall</th><th>F1</th><th>{unit}</th>"
        f"</tr>{scores}</table></div>"
    )


def _fmt(fmt: str, value: float | None) -> str:
    return _e(format_metric(fmt, value))


def _study(comparison: Comparison) -> str:
    rows = []
    for summary in comparison.runs:
        ours = summary.evaluation["metrics"]["accuracy"]
        mine = (
            f"{_e(summary.label)}: <b>{_fmt('{:.1%}', ours['value'])}</b> "
            f"<small>[{_fmt('{:.1%}', ours['low'])}, {_fmt('{:.1%}', ours['high'])}]</small>"
        )
        study_rows = comparison.study.get(summary.kind) or [("(not in the study)", "", None)]
        for k, (name, split, value) in enumerate(study_rows):
            theirs = "" if value is None else f"{value:.1%}"
            ours_cell = f'<td rowspan="{len(study_rows)}">{mine}</td>' if k == 0 else ""
            rows.append(
                f"<tr>{ours_cell}<td>{_e(name)}</td><td>{_e(split)}</td><td>{theirs}</td></tr>"
            )
    return (
        "<table><tr><th>This run (held-out photos)</th><th>The study's model</th>"
        "<th>Its split</th><th>Its accuracy</th></tr>" + "".join(rows) + "</table>"
        "<p><small>The study's numbers are on the AI CUP 2020 data (about 5,600 train, 800 "
        "validation and 1,600 test photos), with splits that ignore which photos show the "
        "same fruit; its forest's OOB score counted flipped and rotated copies of each photo. "
        "They are shown beside, not instead of, this data's scores.</small></p>"
    )


def _gallery(comparison: Comparison) -> str:
    cards = []
    for summary in comparison.runs:
        for m in summary.mistakes:
            caption = (
                f"<b>{_e(summary.label)}</b>: {_e(m.image_id)} is {_e(m.true)}, graded "
                f"{_e(m.predicted)} with probability {m.confidence:.2f}"
                + (f" (fold {m.fold} model)" if summary.n_models > 1 else "")
            )
            body = (
                _img(m.figure, f"explanation of {m.image_id}")
                if m.figure
                else f"<p><i>{_e(m.note)}</i></p>"
            )
            cards.append(f'<div class="card">{body}<p>{caption}</p></div>')
    if not cards:
        return "<p>No mistakes among the held-out photos of these runs.</p>"
    return (
        "<p>Each photo is explained by the model that held it out, by the method its panel "
        "names: Grad-CAM (where the CNN's feature maps looked) or LIME (the superpixels that "
        "push the model towards the grade it gave, shaded green).</p>"
        f'<div class="row gallery">{"".join(cards)}</div>'
    )


def _method(summary: RunSummary) -> str:
    boot = summary.evaluation["bootstrap"]
    unit = "fruits" if boot["unit"] == "fruit" else "photos"
    return (
        f"<li><b>{_e(summary.label)}</b>: {_e(summary.how)}; {_e(summary.scored_on)}; "
        f"{boot['replicates']} replicates of {boot['n_units']} {unit} (seed {boot['seed']}).</li>"
    )


def _meaning(text: str, runs: Sequence[RunSummary]) -> str:
    """A metric's meaning, in words of classes where a run's labels have no order."""
    if all(s.ordered for s in runs):
        return text
    return (
        text.replace("per-grade", "per-class")
        .replace("the grades", "the classes")
        .replace("a rare grade", "a rare class")
    )


def _definitions(runs: Sequence[RunSummary], grades: Sequence[str]) -> str:
    """The meaning of each metric the report shows."""
    shown = {m for s in runs for m in s.evaluation["metrics"]}
    words = [metric_words(m, grades) for m in METRIC_INFO if m in shown]
    items = "".join(f"<dt>{_e(t)}</dt><dd>{_e(_meaning(d, runs))}</dd>" for t, d in words)
    return f"<dl>{items}</dl>"


def _fruit_section(runs: Sequence[RunSummary], grades: Sequence[str]) -> str:
    """Whole fruits graded from all their photos by each run's fruit rule."""
    rows = []
    any_ordered = any(s.ordered for s in runs)  # grade distances mean nothing for classes
    for s in runs:
        assert s.fruit is not None
        found = s.fruit["headline"]
        accuracy = s.fruit["metrics"]["accuracy"]
        kappa = s.fruit["metrics"].get("quadratic_kappa", {}).get("value")
        errors = found.get("extreme_errors")
        ece = (s.fruit.get("calibration") or {}).get("ece")
        reach = ((s.fruit.get("coverage") or {}).get("reaches_target") or {}).get("coverage", 0.0)
        ordinal = (
            f"<td>{_fmt('{:.3f}', kappa)}</td><td>{'' if errors is None else errors}</td>"
            if any_ordered
            else ""
        )
        rows.append(
            f"<tr><td><b>{_e(s.label)}</b></td><td>{s.fruit['n_photos']}</td>"
            f"<td>{_e(found.get('rule', 'mean'))}</td>"
            f"<td>{_fmt('{:.3f}', accuracy['value'])} [{_fmt('{:.3f}', accuracy['low'])}, "
            f"{_fmt('{:.3f}', accuracy['high'])}]</td>{ordinal}<td>{_fmt('{:.3f}', ece)}</td>"
            f"<td>{reach:.0%}</td></tr>"
        )
    extreme = f"{grades[0]}&harr;{grades[-1]}" if len(grades) > 2 else "Extreme"
    ordinal_heads = (
        f"<th>Grade agreement (QWK)</th><th>{extreme} errors</th>" if any_ordered else ""
    )
    table = (
        "<table><tr><th>Run</th><th>Fruits</th><th>Rule</th><th>Accuracy</th>"
        f"{ordinal_heads}<th>Calibration error (ECE; 0 is perfect)</th>"
        "<th>Graded at 99% accuracy</th></tr>" + "".join(rows) + "</table>"
    )
    matrices = "".join(_confusion(s, grades, s.fruit) for s in runs)
    return (
        "<section><h2>Fruit level</h2><p>Each fruit graded from all of its photos by the "
        "run's fruit rule, as a packing line sorts it; intervals redraw whole fruits. The "
        "reliability and coverage of whole fruits are among the plots below.</p>"
        f'{table}<div class="row">{matrices}</div></section>'
    )


def render_report(comparison: Comparison, path: str | Path) -> Path:
    """Write ``comparison`` (from :func:`mangograde.comparison.compare_runs`) as HTML."""
    runs, grades = comparison.runs, comparison.grades
    parts = [
        f'<p class="warning"><b>Warning:</b> {_e(s.label)}: {_e(w)}</p>'
        for s in runs
        for w in s.evaluation.get("warnings", [])
    ]
    parts.append(f"<section><h2>Summary</h2>{_summary(comparison)}")
    buffer = io.BytesIO()
    charted = [
        m
        for m in ("accuracy", "balanced_accuracy", "quadratic_kappa")
        if all(m in s.evaluation["metrics"] for s in runs)
    ]
    metric_intervals(
        [s.label for s in runs], [s.evaluation["metrics"] for s in runs], charted, buffer
    )
    parts.append(_img(buffer.getvalue(), ", ".join(charted) + " with intervals"))
    parts += [f'<p class="notice">{_e(n)}</p>' for n in comparison.notices]
    parts.append("</section>")
    if comparison.study:
        parts.append(
            f"<section><h2>Beside the study's own numbers</h2>{_study(comparison)}</section>"
        )
    matrices = "".join(_confusion(s, grades) for s in runs)
    parts.append(
        "<section><h2>Confusion matrices</h2><p>Rows: the true label; columns: the label "
        "given; each cell: photos and share of the row.</p>"
        f'<div class="row">{matrices}</div></section>'
    )
    with_fruits = [s for s in runs if s.fruit is not None]
    if with_fruits:
        parts.append(_fruit_section(with_fruits, grades))
    curves = [(s.label, s.curves) for s in runs if s.curves]
    if curves:
        images = "".join(f'<div class="card"><h3>{_e(n)}</h3>{_img(c, n)}</div>' for n, c in curves)
        parts.append(f"<section><h2>CNN learning curves</h2>{images}</section>")
    plots = [(s.label, name, data) for s in runs for name, data in s.plots]
    for title, reliability in (("Reliability of the probabilities", True),
                               ("Searches and sweeps", False)):  # fmt: skip
        shown = [p for p in plots if p[1].startswith("reliability") == reliability]
        if shown:
            images = "".join(
                f'<div class="card"><h3>{_e(label)}: {_e(name)}</h3>{_img(data, name)}</div>'
                for label, name, data in shown
            )
            parts.append(f"<section><h2>{title}</h2>{images}</section>")
    parts.append(f"<section><h2>Most confident mistakes</h2>{_gallery(comparison)}</section>")
    parts.append(
        "<section><h2>How these numbers were made</h2><p>Every score is on held-out photos: "
        "each was graded by a model trained without it. 95% intervals: percentiles of "
        "bootstrap replicates that redraw the held-out fruits (or photos, where no groups "
        "were given) with replacement.</p><ul>"
        + "".join(_method(s) for s in runs)
        + f"</ul>{_definitions(runs, comparison.grades)}</section>"
    )
    names = ", ".join(s.label for s in runs)
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>mangograde comparison: {_e(names)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Mango grading: {len(runs)} run{'s' if len(runs) != 1 else ''} compared</h1>"
        f"<p>{_e(names)} &middot; {_e(_labels_line(comparison))} &middot; "
        f"{_e(comparison.created)}</p>"
        f"</header><main>{''.join(parts)}</main>"
        f"<footer>Made by mangograde {_e(__version__)} in {comparison.seconds:.1f} s. Opens "
        "offline: every image is inside this file.</footer></body></html>"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, document)
    return path
