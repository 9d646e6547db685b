"""The package's folders are its layers; modules that moved keep their old import paths."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path

import pytest

import mangograde
from mangograde._moved import MOVED

PACKAGE = Path(mangograde.__file__).parent


def test_the_top_level_holds_folders_not_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert set(loose) - {"__init__.py", "__main__.py"} == {"_moved.py"}, loose


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_import_path_still_works_and_says_where_the_module_went(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    homes = [importlib.import_module(name) for name in MOVED[old]]
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert any(MOVED[old][0] in str(w.message) for w in caught)
    for home in homes:
        public = [n for n in vars(home) if not n.startswith("_")]
        assert public, home
        for name in public:
            assert getattr(module, name) is getattr(home, name), (old, name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018


def test_names_the_readme_showed_before_the_move_import_as_before():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mangograde.grading import evaluate_dataset, grade_photos, write_submission
        from mangograde.transforms import eval_batch
    from mangograde.features.transforms import eval_batch as moved_eval_batch
    from mangograde.workflows.evaluate import evaluate_dataset as moved_evaluate
    from mangograde.workflows.predict import grade_photos as moved_grade

    assert eval_batch is moved_eval_batch
    assert evaluate_dataset is moved_evaluate and grade_photos is moved_grade
    assert callable(write_submission)


def test_names_that_moved_up_from_runs_still_import_from_runs_with_a_warning():
    from mangograde.runs import fit_fold, load_for, splits_for
    from mangograde.runs.fitting import fit_fold as fitting_fit_fold
    from mangograde.workflows.train import RunResult, train_run

    with pytest.warns(DeprecationWarning, match=r"mangograde\.workflows\.train"):
        from mangograde.runs import train_run as old_train_run
    with pytest.warns(DeprecationWarning, match=r"mangograde\.workflows\.train"):
        from mangograde.runs import RunResult as old_run_result
    assert old_train_run is train_run and old_run_result is RunResult
    assert fit_fold is fitting_fit_fold and callable(load_for) and callable(splits_for)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        import mangograde.runs

        mangograde.runs.not_a_name  # noqa: B018


def test_no_module_is_over_600_lines_and_no_grader_is_typed_any():
    """Issue 35, point 8: small rooms (migrations aside), and a grader or predictor is
    always a ``Grader`` (or a concrete grader), never ``Any``."""
    import re

    long, untyped = [], []
    typed_any = re.compile(r"\b(grader|predictor)\s*:\s*(Any|\"Any\")\b")
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 600:
            long.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        untyped += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in typed_any.finditer(text)]
    assert not long, long
    assert not untyped, untyped


def test_open_grader_is_typed_as_the_grader_contract():
    import typing

    from mangograde.graders import Grader, open_grader

    assert typing.get_type_hints(open_grader)["return"] is Grader
