"""What the commands print alike: the metrics and confusion tables, and one-line summaries
of abstaining, familiarity, the fruit level and calibration."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def metrics_table(record: dict[str, Any], title: str) -> Table:
    from ..evaluation.metrics import METRIC_INFO, format_metric, metric_words

    table = Table(title=title)
    for column in ("Metric", "Value", "95% interval"):
        left = column == "Metric"
        table.add_column(column, justify="left" if left else "right", no_wrap=not left)
    for name, value in record["metrics"].items():
        fmt = METRIC_INFO[name][3]
        interval = f"{format_metric(fmt, value['low'])} - {format_metric(fmt, value['high'])}"
        words = metric_words(name, record.get("grades") if record.get("ordered", True) else None)
        table.add_row(words[0], format_metric(fmt, value["value"]), interval)
    return table


def agreement(qwk: float) -> str:
    """QWK, the plain meaning first."""
    return f"grade agreement {qwk:.3f} (QWK; 1 is perfect, 0 is chance)"


def calibration_error(ece: float) -> str:
    """ECE, the plain meaning first."""
    return f"calibration error {ece:.3f} (ECE; 0 is perfect)"


def drift_words(p_value: float) -> str:
    """A drift p-value, the plain meaning first."""
    if p_value < 0.01:
        return (f"[yellow]these photos are very unlikely to come from the run's camera, light "
                f"and orchard[/] (drift p = {p_value:.2g})")  # fmt: skip
    return (f"these photos could come from the run's camera, light and orchard (drift p = "
            f"{p_value:.2g})")  # fmt: skip


def confusion_table(record: dict[str, Any]) -> Table:
    from ..evaluation.metrics import format_metric

    grades = record["grades"]
    # Many or long names: columns by number, so no name is cut to fit the terminal.
    numbered = len(grades) > 4 or max(map(len, grades)) > 12
    heads = [str(i + 1) for i in range(len(grades))] if numbered else list(grades)
    what = "grade" if record.get("ordered", True) else "class"
    table = Table(title=f"Confusion (rows: true {what}, columns: predicted)")
    table.add_column("true", overflow="fold")
    for head in heads:
        table.add_column(head, justify="right", no_wrap=True)
    table.add_column("recall", justify="right", no_wrap=True)
    for i, (grade, row) in enumerate(zip(grades, record["confusion"], strict=True)):
        recall = record["per_grade"][grade]["recall"]
        name = f"{i + 1} {grade}" if numbered else grade
        table.add_row(name, *map(str, row), format_metric("{:.3f}", recall))
    return table


def abstain_line(record: dict[str, Any], what: str = "photos") -> str:
    """What the run's abstain setting leaves to check by hand, and the accuracy on the rest."""
    line = (f"Check by hand below p = {record['threshold']:.2f}: {record['n_check']} {what} "
            f"({1 - record['coverage']:.0%})")  # fmt: skip
    if record["accuracy"] is None:
        return f"{line}; none graded."
    return f"{line}; accuracy {record['accuracy']:.3f} on the {record['coverage']:.0%} graded."


def familiar_line(found: dict[str, Any]) -> str:
    """What the run's familiarity model says of a batch of photos, in one line."""
    line = (f"Unfamiliar to the run: {found['n_unfamiliar']} photos "
            f"({found['share_unfamiliar']:.0%})")  # fmt: skip
    if found["drift_p"] is not None:
        line += f"; {drift_words(found['drift_p'])}"
    sides = [(k, found[f"accuracy_{k}"]) for k in ("familiar", "unfamiliar")]
    shown = [f"{k} {a:.3f}" for k, a in sides if a is not None]
    return line + (f"; accuracy {', '.join(shown)}" if shown else "")


def not_a_fruit_line(found: dict[str, Any]) -> str:
    """What the run's not-a-fruit check says of a batch of photos, in one line."""
    line = (f"Not a mango (nothing like the run's training photos; never graded): "
            f"{found['n_not_a_fruit']} photos ({found['share_not_a_fruit']:.0%})")  # fmt: skip
    if found["accuracy_others"] is not None:
        line += f"; accuracy {found['accuracy_others']:.3f} on the others"
    return line


def fruit_line(found: dict[str, Any], grades: list[str]) -> str:
    """The fruit level in one line, from a :func:`~mangograde.evaluation.headline` record."""
    value, low, high = (found["accuracy"][k] for k in ("value", "low", "high"))
    line = (f"Fruit level ({found['rule']} of each fruit's photos, {found['n']} fruits): "
            f"accuracy {value:.3f} [{low:.3f}, {high:.3f}]")  # fmt: skip
    if found.get("qwk") is not None:
        line += (
            f", {agreement(found['qwk'])}, {grades[0]}↔{grades[-1]} errors "
            f"{found['extreme_errors']}"
        )
    if found.get("ece") is not None:
        line += f", {calibration_error(found['ece'])}"
    if found.get("accuracy_at_90") is not None:
        line += (f"; accuracy {found['accuracy_at_90']:.3f} on the surest 90% of fruits, 99% "
                 f"accuracy on {found['coverage_at_99']:.0%} of them "
                 f"({round(found['coverage_at_99'] * found['n'])} fruits)")  # fmt: skip
    return line


def confidence_line(record: dict[str, Any]) -> str:
    """ECE, and how much can be graded at 99% accuracy leaving the rest to check by hand."""
    ece = record["calibration"]["ece"]
    reach = record["coverage"]["reaches_target"]
    at_90 = record["coverage"]["accuracy_at_90"]
    n = record["n_photos"]
    line = (
        f"Calibration error {ece:.3f} on {n} photos (ECE; 0 is perfect). Most confident first: "
        f"accuracy {at_90:.3f} on 90% of them ({round(0.9 * n)} photos)"
    )
    if reach:
        return (f"{line}; 99% accuracy on {reach['coverage']:.0%} of them "
                f"({round(reach['coverage'] * n)} photos; top probability at least "
                f"{reach['threshold']:.2f}, the rest checked by hand).")  # fmt: skip
    return f"{line}; 99% accuracy is not reached at any share."


def held_out_lines(metrics: dict[str, Any]) -> list[str]:
    """What a run's ``abstain`` leaves to check, and its fruit level, from metrics.json."""
    lines = [abstain_line(metrics["abstain"])] if "abstain" in metrics else []
    if "fruit" in metrics:
        lines.append(fruit_line(metrics["fruit"], metrics["grades"]))
        if "abstain" in metrics["fruit"]:
            lines.append(abstain_line(metrics["fruit"]["abstain"], "fruits"))
    rejects = (metrics.get("not_a_fruit") or {}).get("reject_photos")
    if rejects:
        caught, taken = rejects["held_out_caught"], rejects["mangoes_taken_for_rejects"]
        lines.append(
            f"Reject photos: {rejects['n']}; each held out from the others, "
            + ("none to hold out" if caught != caught else f"{caught:.0%} answered not-a-fruit")
            + f"; held-out training photos taken for one: {taken:.1%}"
        )
    return lines
