"""Label CSVs in every variant the competition's users bring, and every bad input."""

from __future__ import annotations

import pytest

from mangograde.basics.errors import DatasetError
from mangograde.data import load_dataset

from .helpers import write_csv, write_photo

ROWS = "a1.jpg,{A}\na2.jpg,{A}\nb1.jpg,{B}\nb2.jpg,{B}\nc1.jpg,{C}\nc2.jpg,{C}\n"
PLAIN = {"A": "A", "B": "B", "C": "C"}
CHINESE = {"A": "等級A", "B": "等級B", "C": "等級C"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "big5"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("header", ["", "image_id,label\n"])
@pytest.mark.parametrize("labels", [PLAIN, CHINESE], ids=["ABC", "等級"])
def test_label_csv_variants_all_load(photo_folder, tmp_path, encoding, newline, header, labels):
    csv_path = write_csv(tmp_path / "labels.csv", header + ROWS.format(**labels), encoding, newline)
    ds = load_dataset(photo_folder, labels=csv_path)
    assert ds.layout == "labels-csv"
    assert ds.image_ids == ("a1.jpg", "a2.jpg", "b1.jpg", "b2.jpg", "c1.jpg", "c2.jpg")
    assert list(ds.labels) == [0, 0, 1, 1, 2, 2]
    assert ds.grade_counts() == {"A": 2, "B": 2, "C": 2}
    assert ds.notices == ()


def test_big5_file_really_is_not_utf8(tmp_path):
    # Guards the test above: the Big5 bytes of 等級 must not decode as UTF-8.
    raw = write_csv(tmp_path / "x.csv", "a1.jpg,等級A\n", "big5").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_extra_columns_are_ignored_and_label_column_found_by_name(photo_folder, tmp_path):
    text = "image_id,x,y,w,h,label,defect\n" + "".join(
        f"{n}.jpg,1,2,3,4,{g},crack\n" for n, g in [("a1", "A"), ("b1", "B"), ("c1", "C")]
    )
    ds = load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    assert list(ds.labels) == [0, 1, 2]


def test_extra_columns_without_header_use_the_second_column(photo_folder, tmp_path):
    text = "a1.jpg,A,10,20,30,40,spot\nb1.jpg,B,1,1,1,1,spot\n"
    ds = load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    assert list(ds.labels) == [0, 1]


def test_ids_without_extension_and_in_subfolders_match(tmp_path):
    write_photo(tmp_path / "imgs" / "Train" / "x1.jpg", seed=1)
    write_photo(tmp_path / "imgs" / "Train" / "x2.jpg", seed=2)
    text = "image_id,label\nx1,A\nTrain/x2.jpg,B\n"
    ds = load_dataset(tmp_path / "imgs", labels=write_csv(tmp_path / "l.csv", text))
    assert ds.image_ids == ("Train/x1.jpg", "Train/x2.jpg")


def test_photo_without_row_is_reported_not_fatal(photo_folder, tmp_path):
    text = "a1.jpg,A\nb1.jpg,B\n"
    ds = load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    assert len(ds) == 2
    (notice,) = ds.notices
    assert "4 photos" in notice and "no row" in notice and "c2.jpg" in notice


def test_every_problem_is_reported_at_once_with_rows(photo_folder, tmp_path):
    text = "a1.jpg,A\nghost.jpg,B\nb1.jpg,B\nb1.jpg,B\nc1.jpg,D\nc2.jpg,等級E\n"
    with pytest.raises(DatasetError) as info:
        load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    message = str(info.value)
    assert "row 2 ghost.jpg" in message
    assert "b1.jpg (rows 3 and 4)" in message
    assert "unknown label 'D'" in message and "lines 5" in message
    assert "unknown label '等級E'" in message


def test_short_rows_are_named(photo_folder, tmp_path):
    with pytest.raises(DatasetError, match=r"lines 2\b"):
        load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", "a1.jpg,A\nb1.jpg\n"))


def test_single_grade_is_refused(photo_folder, tmp_path):
    csv_path = write_csv(tmp_path / "l.csv", "a1.jpg,A\na2.jpg,A\n")
    with pytest.raises(DatasetError, match="Only grade A found among 2 photos"):
        load_dataset(photo_folder, labels=csv_path)
    assert len(load_dataset(photo_folder, labels=csv_path, allow_single_grade=True)) == 2


def test_custom_grade_names_in_csv(photo_folder, tmp_path):
    text = "a1.jpg,good\nb1.jpg,fair\nc1.jpg,poor\n"
    ds = load_dataset(
        photo_folder, labels=write_csv(tmp_path / "l.csv", text), grades=["good", "fair", "poor"]
    )
    assert list(ds.labels) == [0, 1, 2] and ds.grades == ("good", "fair", "poor")


def test_missing_label_file_and_empty_label_file(photo_folder, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(photo_folder, labels=tmp_path / "nope.csv")
    with pytest.raises(DatasetError, match="has no rows"):
        load_dataset(photo_folder, labels=write_csv(tmp_path / "empty.csv", "\n\n"))


def test_same_file_name_in_two_subfolders_is_ambiguous(tmp_path):
    write_photo(tmp_path / "d" / "one" / "x.jpg", seed=1)
    write_photo(tmp_path / "d" / "two" / "x.jpg", seed=2)
    write_photo(tmp_path / "d" / "two" / "y.jpg", seed=3)
    text = "x.jpg,A\ntwo/y.jpg,B\n"
    with pytest.raises(DatasetError, match="more than one photo"):
        load_dataset(tmp_path / "d", labels=write_csv(tmp_path / "l.csv", text))


def test_first_row_with_unknown_label_is_data_not_a_header(photo_folder, tmp_path):
    text = "a1,D\nb1,B\nc1,C\n"
    with pytest.raises(DatasetError, match="unknown label 'D' in 1 row"):
        load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))


def test_header_with_unfamiliar_names_is_still_a_header(photo_folder, tmp_path):
    text = "picture,quality\na1.jpg,A\nc1.jpg,C\n"
    ds = load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    assert ds.image_ids == ("a1.jpg", "c1.jpg")


def test_ids_match_whatever_their_case(photo_folder, tmp_path):
    text = "A1.JPG,A\nB1,B\n"
    ds = load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
    assert ds.image_ids == ("a1.jpg", "b1.jpg")


def test_row_naming_a_file_of_unsupported_type_says_so(photo_folder, tmp_path):
    (photo_folder / "d1.heic").write_bytes(b"\0\0\0\x18ftypheic")
    text = "a1.jpg,A\nd1.heic,B\n"
    with pytest.raises(DatasetError, match=r"type mangograde does not read .*row 2 d1\.heic"):
        load_dataset(photo_folder, labels=write_csv(tmp_path / "l.csv", text))
