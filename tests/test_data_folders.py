"""Grade folders, unlabelled folders, groups CSVs, and the real datasets beside the repo."""

from __future__ import annotations

import pytest

from mangograde.basics.errors import DatasetError
from mangograde.data import attach_groups, load_dataset

from .helpers import SHARED_DATA, needs_shared_data, write_csv, write_photo


def test_known_grade_folder_names_are_ordered_best_first(class_folders):
    ds = load_dataset(class_folders)
    assert ds.layout == "class-folders"
    assert ds.grades == ("Extra_Class", "Class_I", "Class_II")
    assert ds.image_ids[0] == "Extra_Class/img_00.jpg"
    assert ds.grade_counts() == {"Extra_Class": 4, "Class_I": 4, "Class_II": 4}


def test_unfamiliar_folder_names_need_grades(tmp_path):
    for g, name in enumerate(["gold", "silver", "bronze"]):
        write_photo(tmp_path / "d" / name / "p.jpg", seed=g)
    with pytest.raises(DatasetError, match="--grades bronze,gold,silver"):
        load_dataset(tmp_path / "d")
    ds = load_dataset(tmp_path / "d", grades=["gold", "silver", "bronze"])
    assert list(ds.labels) == [0, 1, 2]


def test_folder_outside_grades_and_grade_without_folder_are_errors(class_folders):
    with pytest.raises(DatasetError) as info:
        load_dataset(class_folders, grades=["Extra_Class", "Class_I", "Class_III"])
    message = str(info.value)
    assert "no folder of photos for grade 'Class_III'" in message
    assert "folder 'Class_II' is not one of the grades" in message


def test_grades_option_must_be_distinct(class_folders):
    with pytest.raises(DatasetError, match="distinct"):
        load_dataset(class_folders, grades=["A", "A"])


def test_unlabelled_folder_loads_for_prediction(photo_folder):
    ds = load_dataset(photo_folder)
    assert ds.layout == "unlabelled" and not ds.labelled and len(ds) == 6


def test_non_photo_files_are_listed_not_silently_dropped(photo_folder):
    (photo_folder / "notes.txt").write_text("hello")
    (photo_folder / "IMG_1.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (photo_folder / ".DS_Store").write_bytes(b"x")
    ds = load_dataset(photo_folder)
    (notice,) = ds.notices
    assert "2 files ignored" in notice and "IMG_1.heic" in notice and "notes.txt" in notice


def test_empty_folder_and_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="No photos found"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")


def test_photos_both_at_top_and_in_subfolders_is_ambiguous(class_folders):
    write_photo(class_folders / "stray.jpg")
    with pytest.raises(DatasetError, match="both directly inside"):
        load_dataset(class_folders)


def test_csv_layout_folder_without_labels_points_to_labels(tmp_path):
    write_photo(tmp_path / "d" / "train" / "x.jpg", seed=1)
    write_photo(tmp_path / "d" / "dev" / "y.jpg", seed=2)
    write_csv(tmp_path / "d" / "train.csv", "x.jpg,A\n")
    with pytest.raises(DatasetError, match="--labels"):
        load_dataset(tmp_path / "d")


GROUPS = (
    "image,grade_folder,fruit_id\n"
    + "".join(
        f"{g}/img_{k}{i}.jpg,{g},fruit{k}{i // 2}\n"
        for k, g in enumerate(["Extra_Class", "Class_I", "Class_II"])
        for i in range(4)
    )
    + "Class_II/removed.jpg,Class_II,fruit99\n"
)


def test_groups_csv_with_mango_grading_columns(class_folders, tmp_path):
    ds = load_dataset(class_folders, groups=write_csv(tmp_path / "g.csv", GROUPS))
    assert ds.groups[:4] == ("fruit00", "fruit00", "fruit01", "fruit01")
    assert len(set(ds.groups)) == 6
    assert any("1 row of g.csv name photos not in this dataset" in n for n in ds.notices)


def test_groups_csv_plain_two_columns_by_file_name(class_folders, tmp_path):
    ds = load_dataset(class_folders)
    text = "".join(f"{name.split('/')[-1]},f{i % 3}\n" for i, name in enumerate(ds.image_ids))
    grouped = attach_groups(ds, write_csv(tmp_path / "g.csv", text))
    assert grouped.groups == tuple(f"f{i % 3}" for i in range(len(ds)))


def test_photos_without_group_and_conflicting_groups_are_errors(class_folders, tmp_path):
    text = "image,group\nExtra_Class/img_00.jpg,f1\nExtra_Class/img_00.jpg,f2\n"
    with pytest.raises(DatasetError) as info:
        load_dataset(class_folders, groups=write_csv(tmp_path / "g.csv", text))
    message = str(info.value)
    assert "11 photos of the dataset have no group" in message
    assert "img_00.jpg (rows 2 and 3)" in message


def test_groups_file_needs_a_recognisable_group_column(class_folders, tmp_path):
    text = "image,a,b\nExtra_Class/img_00.jpg,x,y\n"
    with pytest.raises(DatasetError, match="which column"):
        load_dataset(class_folders, groups=write_csv(tmp_path / "g.csv", text))


@needs_shared_data
def test_real_aicup_sample_counts():
    root = SHARED_DATA / "aicup-sample"
    ds = load_dataset(root / "sample_image", labels=root / "Sample_Label.csv")
    assert ds.grade_counts() == {"A": 16, "B": 39, "C": 39}
    assert ds.notices == ()


@needs_shared_data
def test_real_class_folders_load_with_170_fruit_groups():
    root = SHARED_DATA / "mango-grading"
    ds = load_dataset(root, groups=root / "fruit_groups.csv")
    assert len(ds) == 600 and len(set(ds.groups)) == 170
    assert ds.grades == ("Extra_Class", "Class_I", "Class_II")


def test_groups_without_header_or_extensions(class_folders, tmp_path):
    ds = load_dataset(class_folders)
    text = "".join(f"{name.rsplit('.', 1)[0]},f{i}\n" for i, name in enumerate(ds.image_ids))
    assert attach_groups(ds, write_csv(tmp_path / "g.csv", text)).groups[0] == "f0"


def test_groups_join_grade_folder_and_bare_file_names(tmp_path):
    for g, grade in enumerate(["A", "B", "C"]):
        for i in range(2):
            write_photo(tmp_path / "d" / grade / f"img_{i}.jpg", seed=10 * g + i)
    rows = "".join(f"img_{i}.jpg,{g},{g}{i}\n" for g in "ABC" for i in range(2))
    ds = load_dataset(
        tmp_path / "d", groups=write_csv(tmp_path / "g.csv", "image,grade_folder,fruit\n" + rows)
    )
    assert ds.groups == ("A0", "A1", "B0", "B1", "C0", "C1")
    ambiguous = write_csv(tmp_path / "h.csv", "image,group\nimg_0.jpg,y\n")
    with pytest.raises(DatasetError, match="match more than one photo: row 2 img_0.jpg"):
        load_dataset(tmp_path / "d", groups=ambiguous)


def test_empty_grade_folder_is_named(tmp_path):
    write_photo(tmp_path / "d" / "A" / "x.jpg", seed=1)
    write_photo(tmp_path / "d" / "B" / "y.jpg", seed=2)
    (tmp_path / "d" / "C").mkdir()
    with pytest.raises(DatasetError, match="the folder of grade 'C' holds no photos"):
        load_dataset(tmp_path / "d")
