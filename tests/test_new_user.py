"""What a new user tripped over, each checked through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.cli import app

from .helpers import write_photo

VARIETIES = ("Anwar Ratool", "Chaunsa (Black)", "Sindhri")


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def folders(root: Path, names: tuple[str, ...], per: int = 6) -> Path:
    for g, name in enumerate(names):
        for i in range(per):
            write_photo(root / name / f"{g}-{i}.jpg", seed=100 * g + i, size=(24, 24))
    return root


TINY_RF = ["--model", "rf", "--set", "n_estimators=4", "--set", "features.size=8",
           "--set", "expand=none", "--cv", "2"]  # fmt: skip


def test_unknown_folder_names_suggest_quoted_grades_or_unordered(tmp_path):
    data = folders(tmp_path / "v", VARIETIES)
    result = run("train", data, *TINY_RF, "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "--grades 'Anwar Ratool,Chaunsa (Black),Sindhri'" in result.output
    assert "--unordered" in result.output
    lemons = folders(tmp_path / "l", ("bad_quality", "empty_background", "good_quality"))
    result = run("data", "inspect", lemons)
    assert "--grades good_quality,empty_background,bad_quality" in result.output


def test_unordered_classes_get_class_metrics_only(tmp_path):
    data = folders(tmp_path / "v", VARIETIES)
    out = tmp_path / "run"
    result = run("train", data, *TINY_RF, "--unordered", "--out", out)
    assert result.exit_code == 0, result.output
    assert "labels: unordered" in (out / "config.yaml").read_text(encoding="utf-8")
    target = tmp_path / "eval.json"
    result = run("evaluate", out, data, "--out", target, "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    record = json.loads(target.read_text(encoding="utf-8"))
    assert set(record["metrics"]) == {"accuracy", "balanced_accuracy", "macro_f1"}
    assert "rows: true class" in result.output and "kappa" not in result.output.lower()
    report = tmp_path / "r.html"
    result = run("compare", out, "--out", report, "--mistakes", "0", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    page = report.read_text(encoding="utf-8")
    assert "classes Anwar Ratool, Chaunsa (Black), Sindhri" in page
    assert "Quadratic" not in page and " &gt; " not in page.split("<main>")[0]


def test_evaluate_uses_the_runs_grade_order_and_maps_other_names(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"))
    out = tmp_path / "run"
    assert run("train", data, *TINY_RF, "--out", out).exit_code == 0
    # The same names in another order on disk: matched by name, no --grades needed.
    other = folders(tmp_path / "o", ("C", "B", "A"))
    result = run("evaluate", out, other, "--out", tmp_path / "e1.json", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    # Other names: --grades gives them best-first and they map onto the run's by rank.
    named = folders(tmp_path / "n", ("top", "mid", "low"))
    result = run("evaluate", out, named, "--grades", "top,mid,low", "--out",
                 tmp_path / "e2.json", "--bootstrap", "20")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "top = A, mid = B, low = C" in result.output


def test_set_lists_the_settings_the_model_has(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"))
    result = run("train", data, "--model", "svm", "--set", "epochs=5", "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert "--model svm has no setting 'epochs'" in result.output
    assert "params: n_components" in result.output and "params.epochs" not in result.output


def test_predict_writes_the_competitions_exact_format(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"))
    out = tmp_path / "run"
    assert run("train", data, *TINY_RF, "--out", out).exit_code == 0
    csv = tmp_path / "sub.csv"
    result = run("predict", out, data / "A", data / "A", "--format", "submission", "--out", csv)
    assert result.exit_code == 0, result.output
    lines = csv.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "image_id,label" and len(lines) == 1 + 6
    assert all(line.count(",") == 1 for line in lines)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "explain", "compare"])
def test_help_shows_plain_placeholders_and_flags(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "{" not in result.output and "<bool>" not in result.output
    if command == "explain":
        assert "bootstrap" not in result.output


def test_confusion_of_many_long_names_is_not_cut(tmp_path):
    names = tuple(f"Variety number {i} (long)" for i in range(6))
    data = folders(tmp_path / "v", names, per=4)
    out = tmp_path / "run"
    assert run("train", data, *TINY_RF, "--unordered", "--out", out).exit_code == 0
    result = run("evaluate", out, data, "--out", tmp_path / "e.json", "--bootstrap", "10")
    assert result.exit_code == 0, result.output
    for name in names:
        assert name in result.output


def test_plain_progress_lines_when_not_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.delenv("MANGOGRADE_QUIET")
    data = folders(tmp_path / "g", ("A", "B", "C"))
    result = run("train", data, *TINY_RF, "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "Decoding photos: 18/18 (100%)" in result.output
    assert "Training folds: 1/2 (50%)" in result.output and "ETA" in result.output
    quiet = run("train", data, *TINY_RF, "--out", tmp_path / "q", "--quiet")
    assert quiet.exit_code == 0 and "ETA" not in quiet.output


def test_cache_keeps_under_its_limit_dropping_the_least_recently_used(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MANGOGRADE_CACHE_MAX", "150K")
    first = folders(tmp_path / "a", ("A", "B", "C"))
    second = folders(tmp_path / "b", ("A", "B", "C"))
    for data in (first, second):
        result = run("data", "prepare", data, "--size", "32", "--cache-dir", cache)
        assert result.exit_code == 0, result.output
    size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    assert size <= 150 * 1024
    again = run("data", "prepare", second, "--size", "32", "--cache-dir", cache)
    assert "(18 already cached)" in again.output  # the recent dataset stayed
    shown = run("data", "cache", "--cache-dir", cache)
    assert f"{size / 2**20:.1f} MiB of at most 0.1 MiB" in shown.output
    monkeypatch.setenv("MANGOGRADE_CACHE_MAX", "lots")
    bad = run("data", "cache", "--cache-dir", cache)
    assert bad.exit_code == 1 and "MANGOGRADE_CACHE_MAX" in bad.output


def test_train_reports_the_model_size_and_svm_bundles_keep_one_svc(tmp_path):
    import numpy as np

    data = folders(tmp_path / "g", ("A", "B", "C"))
    out = tmp_path / "run"
    result = run("train", data, "--model", "svm", "--set", "features.size=16",
                 "--set", "n_components=6", "--cv", "2", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    timing = json.loads((out / "timing.json").read_text(encoding="utf-8"))
    on_disk = sum(f.stat().st_size for f in (out / "model").rglob("*") if f.is_file())
    assert timing["model_bytes"] == on_disk
    assert f"Model on disk: {on_disk / 2**20:.1f} MB" in result.output
    with np.load(out / "model" / "fold-0" / "arrays.npz") as stored:
        shapes = [stored[k].shape for k in stored.files]
    support = [s for s in shapes if len(s) == 2 and s[1] == 6 and s[0] > 6]
    assert len(support) == 1  # the calibrated SVC's support vectors, stored once, float32 PCA
    graded = run("predict", out, data / "A", "--out", tmp_path / "p.csv")
    assert graded.exit_code == 0, graded.output


def test_only_fold_trains_the_same_fold_as_the_whole_run(tmp_path):
    import csv

    data = folders(tmp_path / "g", ("A", "B", "C"), per=8)
    whole, one = tmp_path / "whole", tmp_path / "one"
    base = ["train", data, "--model", "rf", "--set", "n_estimators=3", "--set",
            "features.size=8", "--set", "expand=none", "--cv", "3"]  # fmt: skip
    assert run(*base, "--out", whole).exit_code == 0
    result = run(*base, "--only-fold", "1", "--out", one)
    assert result.exit_code == 0, result.output

    def held(run_dir: Path, fold: str) -> set[str]:
        with (run_dir / "predictions.csv").open(encoding="utf-8") as handle:
            return {r["image"] for r in csv.DictReader(handle) if r["fold"] == fold}

    assert held(one, "1") == held(whole, "1") and held(one, "0") == set()
    assert [p.name for p in (one / "model").iterdir()] == ["fold-1"]
    assert json.loads((one / "metrics.json").read_text(encoding="utf-8"))["only_fold"] == 1
    assert "only_fold: 1" in (one / "config.yaml").read_text(encoding="utf-8")
    assert run("predict", one, data / "A", "--out", tmp_path / "p.csv").exit_code == 0
    bad = run(*base, "--only-fold", "3", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and "0 to 2" in bad.output and not (tmp_path / "bad").exists()


def test_include_exclude_and_sample_choose_the_photos(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"), per=8)
    result = run("data", "inspect", data, "--exclude", "C/*", "--include", "*-[0-5].jpg",
                 "--grades", "A,B,C")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "12 of 24 photos kept" in result.output
    out = tmp_path / "run"
    result = run("train", data, *TINY_RF, "--sample", "12", "--sample-seed", "3", "--out", out)
    assert result.exit_code == 0, result.output
    assert "A sample of 12 of 24 photos" in result.output
    config = (out / "config.yaml").read_text(encoding="utf-8")
    assert "sample: 12" in config and "sample_seed: 3" in config
    again = run("train", data, *TINY_RF, "--sample", "12", "--sample-seed", "3",
                "--out", tmp_path / "again")  # fmt: skip
    assert again.exit_code == 0
    first = (out / "predictions.csv").read_text(encoding="utf-8").splitlines()
    second = (tmp_path / "again" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert [r.split(",")[0] for r in first] == [r.split(",")[0] for r in second]
    none = run("data", "inspect", data, "--include", "nothing/*")
    assert none.exit_code == 1 and "No photo" in none.output


def test_compare_shows_saved_evaluations_matches_grades_and_marks_best_fairly(tmp_path):
    abc = folders(tmp_path / "abc", ("A", "B", "C"))
    extra = folders(tmp_path / "ec", ("Extra_Class", "Class_I", "Class_II"))
    one, two = tmp_path / "one", tmp_path / "two"
    assert run("train", abc, *TINY_RF, "--out", one).exit_code == 0
    assert (
        run("train", extra, *TINY_RF, "--val-fraction", "0.3", "--cv", "0", "--out", two).exit_code
        != 0
    )  # fmt: skip  (--cv and --val-fraction clash)
    base = [a for a in TINY_RF if a not in ("--cv", "2")]
    result = run("train", extra, *base, "--val-fraction", "0.3", "--out", two)
    assert result.exit_code == 0, result.output
    other = folders(tmp_path / "other", ("A", "B", "C"), per=3)
    assert run("evaluate", one, other, "--bootstrap", "20").exit_code == 0
    report = tmp_path / "r.html"
    result = run("compare", one, two, "--out", report, "--mistakes", "0", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    assert "Extra_Class = A, Class_I = B, Class_II = C" in result.output
    assert "scored on different photos" in result.output
    page = report.read_text(encoding="utf-8")
    assert "one on other" not in page  # the row is named after the data's folder
    assert f"one (rf-study) on {tmp_path.name}/other" in page
    # Three rows, each on its own photos: none is marked best.
    assert 'class="best"' not in page.split("<table")[1].split("</table>")[0]


def test_explanation_titles_wrap_long_grade_names(monkeypatch):
    import numpy as np

    from mangograde.explain import Explanation
    from mangograde.report import figures

    shown = {}

    def keep(fig, path):
        shown["titles"] = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text()]
        return path

    monkeypatch.setattr(figures, "_save", keep)
    long = "Chaunsa (Black) from the second orchard"
    found = Explanation(
        "gradcam",
        np.zeros((32, 32, 3), np.uint8),
        np.zeros((32, 32)),
        np.zeros((32, 32), bool),
        long,
        long,
        {long: 0.9, "Sindhri": 0.1},
    )
    figures.explanation_figure(found, "unused.png")
    caption = shown["titles"][1]
    assert long.replace(" ", "") in caption.replace("\n", "").replace(" ", "")
    assert max(len(line) for line in caption.splitlines()) <= 42


def test_a_class_the_filters_empty_drops_out_and_need_not_be_a_grade(tmp_path):
    lemons = folders(tmp_path / "l", ("good_quality", "bad_quality", "empty_background"))
    out = tmp_path / "unordered"
    result = run("train", lemons, *TINY_RF, "--unordered", "--exclude", "empty_background/*",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "12 of 18 photos kept" in result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["grades"] == ["bad_quality", "good_quality"]
    named = run("train", lemons, *TINY_RF, "--grades", "good_quality,bad_quality",
                "--exclude", "empty_background/*", "--out", tmp_path / "named")  # fmt: skip
    assert named.exit_code == 0, named.output
    extra = folders(tmp_path / "ec", ("Extra_Class", "Class_I", "Class_II"))
    two = tmp_path / "two"
    result = run("train", extra, *TINY_RF, "--include", "Extra_Class/*", "--include",
                 "Class_II/*", "--out", two)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Class_I has no photo left after the filters and is left out" in result.output
    rows = (two / "predictions.csv").read_text(encoding="utf-8")
    assert "Class_I/" not in rows and "Extra_Class/" in rows and "Class_II/" in rows
    evaluated = run("evaluate", two, extra, "--exclude", "Class_I/*", "--bootstrap", "20")
    assert evaluated.exit_code == 0, evaluated.output


def test_compare_marks_the_run_with_the_best_accuracy(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"), per=8)
    runs = []
    for name, trees in (("few", "1"), ("many", "32")):
        runs.append(tmp_path / name)
        args = [a if a != "n_estimators=4" else f"n_estimators={trees}" for a in TINY_RF]
        assert run("train", data, *args, "--out", runs[-1]).exit_code == 0
    report = tmp_path / "r.html"
    result = run("compare", *runs, "--out", report, "--mistakes", "0", "--bootstrap", "20")
    assert result.exit_code == 0, result.output
    table = report.read_text(encoding="utf-8").split('<table class="summary">')[1]
    cells = [row.split("<td")[2] for row in table.split("</table>")[0].split("<tr>")[2:]]
    accuracy = [float(c.split(">", 1)[1].split("<")[0]) for c in cells]
    marked = [c.startswith(' class="best"') for c in cells]
    assert any(marked)
    assert all(m == (a == max(accuracy)) for m, a in zip(marked, accuracy, strict=True))


def test_predict_chooses_photos_as_the_data_commands_do(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"), per=8)
    out = tmp_path / "run"
    assert run("train", data, *TINY_RF, "--out", out).exit_code == 0
    target = tmp_path / "p.csv"
    result = run("predict", out, data, "--exclude", "C/*", "--sample", "5", "--out", target)
    assert result.exit_code == 0, result.output
    assert "16 of 24 photos kept (--exclude C/*)" in result.output
    assert "A sample of 5 of 16 photos" in result.output
    ids = [line.split(",")[0] for line in target.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(ids) == 5 and not any(i.startswith("2-") for i in ids)  # C's photos are 2-*
    again = run("predict", out, data, "--exclude", "C/*", "--sample", "5", "--out",
                tmp_path / "q.csv")  # fmt: skip
    assert again.exit_code == 0
    assert (tmp_path / "q.csv").read_text(encoding="utf-8").splitlines()[1:] == (
        target.read_text(encoding="utf-8").splitlines()[1:]
    )


def test_a_small_run_says_what_it_bent_once_and_that_its_photos_are_few(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"))
    result = run("train", data, "--model", "svm", "--set", "features.size=8", "--cv", "2",
                 "--out", tmp_path / "svm")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("PCA keeps") == 1 and "(in 2 of 2 folds)" in result.output
    assert "UserWarning" not in result.output and "svm.py" not in result.output
    assert "Few photos: a fold trains on only 3 photos of" in result.output


def test_coverage_statements_give_their_counts(tmp_path):
    data = folders(tmp_path / "g", ("A", "B", "C"), per=8)
    out = tmp_path / "run"
    assert run("train", data, *TINY_RF, "--out", out).exit_code == 0
    result = run("evaluate", out, data, "--bootstrap", "20", "--out", tmp_path / "e.json")
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "ECE" in line and "on 24 photos" in line and "on 90% of them (22 photos)" in line


def test_a_run_of_classes_says_class_and_its_report_keeps_paths_and_headings_right(tmp_path):
    lemons = folders(tmp_path / "l", ("good_quality", "bad_quality"), per=8)
    groups = tmp_path / "groups.csv"
    rows = [f"{g}/{p.name},{g}{i // 2}" for g in ("good_quality", "bad_quality")
            for i, p in enumerate(sorted((lemons / g).iterdir()))]  # fmt: skip
    groups.write_text("image,group\n" + "\n".join(rows) + "\n", encoding="utf-8")
    inspected = run("data", "inspect", lemons, "--unordered")
    assert "Photos per class" in inspected.output and "grade" not in inspected.output.lower()
    out = tmp_path / "run"
    result = run("train", lemons, *TINY_RF, "--unordered", "--groups", groups,
                 "--set", "calibration=temperature", "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    calibration = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
    said = " ".join(result.output.split())
    assert f"(ECE; 0 is perfect) {calibration['ece_before']:.3f} before, " \
        f"{calibration['ece_after']:.3f} after" in said  # fmt: skip
    report = tmp_path / "r.html"
    assert run("compare", out, "--out", report, "--mistakes", "0", "--bootstrap", "20") \
        .exit_code == 0  # fmt: skip
    page = report.read_text(encoding="utf-8")
    page = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)  # figures' bytes
    assert str(tmp_path) not in page and "l/l" not in page and f"{tmp_path.name}/l" in page
    assert "Reliability of the probabilities" in page and "Searches and sweeps" not in page
    assert "per-grade" not in page and "QWK" not in page and "errors</th>" not in page


def burst_folders(root: Path) -> Path:
    """Three grades of 4 fruits, each shot twice 2 s apart (EXIF time), fruits a minute
    apart; and one photo saved again at half size (a near-duplicate)."""
    import numpy as np
    from PIL import Image

    for g, grade in enumerate(("A", "B", "C")):
        for fruit in range(4):
            for shot in range(2):
                path = write_photo(root / grade / f"{fruit}-{shot}.jpg", seed=40 * g + 4 * fruit
                                   + shot, size=(32, 32))  # fmt: skip
                with Image.open(path) as image:
                    exif = image.getexif()
                    exif[0x0132] = f"2026:05:0{g + 1} 10:{fruit:02d}:0{2 * shot}"
                    image.save(path, exif=exif)
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    smooth = Image.fromarray(np.dstack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], 64),
                                        np.full((64, 64), 90, np.uint8)]))  # fmt: skip
    smooth.save(root / "A" / "smooth.jpg", quality=95)
    smooth.resize((32, 32)).save(root / "A" / "smooth-copy.jpg", quality=60)
    return root


def test_bursts_and_near_duplicates_are_named_and_grouped_with_groups_auto(tmp_path):
    data = burst_folders(tmp_path / "b")
    warned = run("train", data, *TINY_RF, "--out", tmp_path / "plain")
    assert warned.exit_code == 0, warned.output
    said = " ".join(warned.output.split())
    assert "2 of 26 photos are near-duplicates of another and 24 were taken within 10 s" in said
    assert "--groups auto" in said
    out = tmp_path / "auto"
    grouped = run("train", data, *TINY_RF, "--groups", "auto", "--out", out)
    assert grouped.exit_code == 0, grouped.output
    said = " ".join(grouped.output.split())
    assert "the 26 photos form 13 groups" in said and "split by --groups auto" in said
    assert "groups: auto" in (out / "config.yaml").read_text(encoding="utf-8")
    rows = (out / "predictions.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    fold = {r.split(",")[0]: r.split(",")[header.index("fold")] for r in rows[1:]}
    for grade in "ABC":
        for fruit in range(4):
            assert fold[f"{grade}/{fruit}-0.jpg"] == fold[f"{grade}/{fruit}-1.jpg"]
    assert fold["A/smooth.jpg"] == fold["A/smooth-copy.jpg"]
    refused = run("evaluate", out, data, "--groups", "auto", "--bootstrap", "20")
    assert refused.exit_code == 1 and "give a groups CSV" in refused.output
