"""The command line, driven through typer's CliRunner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mangograde.basics.errors import DatasetError
from mangograde.cli import app
from mangograde.data.synth import synthesize

from .helpers import SHARED_DATA, needs_shared_data, write_csv, write_photo

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_failure(result, *phrases: str) -> None:
    """Exit status 1 through typer.Exit, the message on the output, no exception escaping."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Error:" in result.output
    for phrase in phrases:
        assert phrase in result.output, result.output


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("cli") / "s", n=30, size=48, seed=0)


@pytest.mark.parametrize(
    "command", [[], ["data"], ["data", "inspect"], ["synth"], ["demo"]], ids=" ".join
)
def test_help_reads_well(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output.splitlines()) > 5


def test_the_console_command_makes_only_the_group_or_command_asked():
    """`mangograde lots verify` starts without making train's or serve's options; the
    whole command line answers --help, --version and a misspelt command."""
    import sys

    from typer.main import get_command

    from mangograde.cli import _only

    assert set(get_command(_only("lots")).commands) == {"lots"}
    assert set(get_command(_only("predict")).commands) == {"predict"}
    assert {"lots", "train", "predict", "data"} <= set(get_command(app).commands)

    def said(*args):
        done = subprocess.run([sys.executable, "-m", "mangograde", *args], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        return done.returncode, done.stdout + done.stderr

    code, text = said("lots", "--help")
    assert code == 0 and "verify" in text and "report" in text
    code, text = said("--debug", "db", "--help")
    assert code == 0 and "upgrade" in text
    code, text = said("--help")
    assert code == 0 and all(name in text for name in ("lots", "train", "ensemble", "data"))
    code, text = said("lost")
    assert code == 2 and "No such command 'lost'" in text


def test_inspect_reports_grades_groups_and_sizes(synth_root):
    result = run(
        "data", "inspect", synth_root / "train", "--labels", synth_root / "train.csv",
        "--groups", synth_root / "groups.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "labels-csv" in result.output
    assert "Groups:" in result.output and "photos per group" in result.output
    assert "48x48" in result.output
    assert "Unreadable photos: none" in result.output


def test_inspect_class_folders_with_grade_order(class_folders):
    result = run("data", "inspect", class_folders, "--grades", "Extra_Class,Class_I,Class_II")
    assert result.exit_code == 0, result.output
    assert "class-folders" in result.output and "Extra_Class" in result.output


def test_inspect_finds_duplicates(photo_folder):
    (photo_folder / "copy.jpg").write_bytes((photo_folder / "a1.jpg").read_bytes())
    result = run("data", "inspect", photo_folder)
    assert result.exit_code == 0, result.output
    assert "a1.jpg = copy.jpg" in result.output


def test_bad_photo_fails_unless_skipped(photo_folder, tmp_path):
    (photo_folder / "broken.jpg").write_bytes(b"")
    labels = write_csv(tmp_path / "l.csv", "a1.jpg,A\nb1.jpg,B\nbroken.jpg,C\nc1.jpg,C\n")
    failed = run("data", "inspect", photo_folder, "--labels", labels)
    assert_clean_failure(failed, "broken.jpg", "empty file")
    skipped = run("data", "inspect", photo_folder, "--labels", labels, "--skip-bad")
    assert skipped.exit_code == 0 and "broken.jpg" in skipped.output


def test_user_errors_are_one_message_and_nonzero(tmp_path):
    assert_clean_failure(run("data", "inspect", tmp_path / "missing"), "does not exist")


def test_debug_shows_the_exception(tmp_path):
    result = run("--debug", "data", "inspect", tmp_path / "missing")
    assert isinstance(result.exception, DatasetError)


def test_unknown_label_names_row_and_value(photo_folder, tmp_path):
    labels = write_csv(tmp_path / "l.csv", "a1.jpg,A\nb1.jpg,Z\n")
    assert_clean_failure(
        run("data", "inspect", photo_folder, "--labels", labels), "unknown label 'Z'"
    )


def test_synth_command_writes_the_layout(tmp_path):
    result = run("synth", tmp_path / "out", "--n", "20", "--size", "40", "--seed", "2")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").rglob("*.jpg"))) == 20
    assert (tmp_path / "out" / "train.csv").is_file() and (
        tmp_path / "out" / "groups.csv"
    ).is_file()


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("make") is None or not (REPO / ".venv" / "bin" / "mangograde").is_file(),
    reason="needs make and the .venv that `make test` creates",
)
def test_make_demo_runs_the_whole_job_at_a_tiny_size(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO), "demo", f"DEMO_OUT={out}", "DEMO_OPTS=--tiny --quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for preset in ("cnn-fast", "svm-study", "rf-study"):
        assert f"Trained {preset}" in done.stdout
        assert (out / "runs" / preset / "predictions.csv").is_file()
    assert f"Open the report: {out / 'report.html'}" in done.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<div class="card"><h3>') >= 3  # a confusion matrix per run
    assert "Beside the study" not in page  # drawn photos are not the competition's
    header = (out / "dev-predictions.csv").read_text().splitlines()[0]
    assert header == "image_id,label,p_A,p_B,p_C,familiarity,reason"
    # Again into the same folder (a second `make demo`): it replaces its own output only.
    (out / "runs" / "svm-study" / "my-notes.txt").write_text("mine")
    again = run("demo", "--tiny", "--quiet", "--out", out)
    assert again.exit_code == 0, again.output
    assert (out / "runs" / "svm-study" / "my-notes.txt").read_text() == "mine"
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "report.html").write_text("mine")
    assert_clean_failure(run("demo", "--tiny", "--out", tmp_path / "thesis"), "no earlier demo")
    assert (tmp_path / "thesis" / "report.html").read_text() == "mine"


def test_skipped_unsupported_file_is_mentioned(tmp_path):
    write_photo(tmp_path / "d" / "x.jpg", seed=1)
    (tmp_path / "d" / "y.heic").write_bytes(b"\0")
    result = run("data", "inspect", tmp_path / "d")
    assert result.exit_code == 0 and "y.heic" in result.output


@needs_shared_data
def test_inspect_the_real_aicup_sample():
    root = SHARED_DATA / "aicup-sample"
    result = run("data", "inspect", root / "sample_image", "--labels", root / "Sample_Label.csv")
    assert result.exit_code == 0, result.output
    for grade, count in [("A", 16), ("B", 39), ("C", 39)]:
        assert any(
            line.split("│")[1:3] == [f" {grade:<5} ", f" {count:<6} "]
            for line in result.output.splitlines()
            if "│" in line
        ), result.output


def test_prepare_fills_the_cache_named_by_flag(synth_root, tmp_path):
    args = ["data", "prepare", synth_root / "dev", "--labels", synth_root / "dev.csv"]
    first = run(*args, "--size", "32", "--crop", "24", "--cache-dir", tmp_path / "c")
    assert first.exit_code == 0, first.output
    assert "resize32-crop24" in first.output and "(0 already cached)" in first.output
    n_photos = len(list((synth_root / "dev").glob("*.jpg")))
    (pack,) = (tmp_path / "c").rglob("*.mgp")  # the photos, once, in one pack
    assert len(pack.with_suffix(".idx").read_text().splitlines()) == n_photos
    assert not list((tmp_path / "c").rglob("*.mgc"))
    second = run(*args, "--size", "32", "--crop", "24", "--cache-dir", tmp_path / "c")
    assert f"({n_photos} already cached)" in second.output


def test_names_with_brackets_are_printed_as_they_are(tmp_path):
    folder = tmp_path / "crate [red] 2"
    write_photo(folder / "[b]mango.jpg", seed=1)
    (folder / "[b]broken.jpg").write_bytes(b"")
    assert_clean_failure(run("data", "inspect", folder), "crate [red] 2", "[b]broken.jpg")


def test_truncated_png_is_reported_not_a_traceback(tmp_path):
    write_photo(tmp_path / "d" / "whole.png", size=(64, 64))
    data = (tmp_path / "d" / "whole.png").read_bytes()
    (tmp_path / "d" / "cut.png").write_bytes(data[: len(data) // 2])
    assert_clean_failure(run("data", "inspect", tmp_path / "d"), "cut.png", "truncated")


def test_bad_settings_are_one_message(photo_folder, tmp_path):
    assert_clean_failure(run("data", "prepare", photo_folder, "--size", "0"), "at least 1 pixel")
    assert_clean_failure(
        run("data", "prepare", photo_folder, "--size", "64", "--crop", "100"), "crop (100)"
    )
    (tmp_path / "afile").write_text("x")
    assert_clean_failure(run("synth", tmp_path / "afile", "--n", "20"), "is a file")


def test_cache_command_shows_and_clears(synth_root, tmp_path):
    cache = ["--cache-dir", tmp_path / "c"]
    run("data", "prepare", synth_root / "dev", "--labels", synth_root / "dev.csv", *cache)
    n_photos = len(list((synth_root / "dev").glob("*.jpg")))
    shown = run("data", "cache", *cache)
    assert shown.exit_code == 0 and f"{n_photos} decoded photos (1 dataset packs)" in shown.output
    (tmp_path / "c" / "ab").mkdir(exist_ok=True)
    (tmp_path / "c" / "ab" / ".tmp-left.part").write_bytes(b"x" * 10)  # a killed writer's
    cleared = run("data", "cache", "--clear", *cache)
    assert cleared.exit_code == 0 and "MiB freed" in cleared.output
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert "0 decoded photos (0 dataset packs)" in run("data", "cache", *cache).output
