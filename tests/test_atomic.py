"""Outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from mangograde.basics.atomic import atomic_open, write_text


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path):
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_finished_write_replaces_the_file_readable_by_others(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with atomic_open(target, newline="") as handle:
        handle.write("a,b\n")
    assert target.read_text(encoding="utf-8") == "a,b\n"
    assert target.stat().st_mode & 0o044  # not left private like a temporary file
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]
