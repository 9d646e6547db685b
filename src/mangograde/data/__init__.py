"""Dataset discovery, labels, groups and splits."""

from .dataset import (
    DEFAULT_GRADES,
    PHOTO_SUFFIXES,
    Dataset,
    PhotoChoice,
    attach_groups,
    find_photos,
    load_dataset,
)
from .splits import fold_of_each, holdout, kfold, train_val_test

__all__ = [
    "DEFAULT_GRADES",
    "PHOTO_SUFFIXES",
    "Dataset",
    "attach_groups",
    "PhotoChoice",
    "find_photos",
    "fold_of_each",
    "holdout",
    "kfold",
    "load_dataset",
    "train_val_test",
]
