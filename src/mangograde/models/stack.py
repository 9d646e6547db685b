"""A stacked ensemble: other families' probabilities, combined by a logistic regression.

The meta-learner is fit only on out-of-fold probabilities from the training photos' own
fruit-grouped inner folds: every probability it learns from came from a member model
that never saw that photo's fruit, and the photos the stack is later scored on are
never among them. Then each member is refit on all the training photos.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

from ..basics.errors import DatasetError, SettingsError
from ..data.splits import kfold
from ..features.pixels import resize_images
from ..images.geometry import Resize
from .blend import in_columns, model_probabilities
from .registry import FoldData, Settings, get_model, preset_names, resolve

DEFAULT_MEMBERS = ("transfer", "cnn-fast", "colour-texture")
FLOOR = 1e-4  # probabilities are clipped here before the log the meta-learner reads


def member_settings(spec: Any, seed: int) -> tuple[str, Settings]:
    """``(label, resolved settings)`` of one member: a preset or family name, or a
    mapping ``{preset | model: NAME, set: {key: value}}``."""
    if isinstance(spec, str):
        spec = {"preset" if spec in preset_names() else "model": spec}
    if not isinstance(spec, dict) or not ({"preset", "model"} & set(spec)):
        raise SettingsError(
            f"Stack member {spec!r}: name a preset or family (e.g. cnn-fast), or give "
            "{preset: NAME, set: {key: value}}."
        )
    unknown = sorted(set(spec) - {"preset", "model", "set"})
    if unknown:
        raise SettingsError(
            f"Stack member {spec!r}: unknown key {', '.join(map(str, unknown))}; a member "
            "takes preset, model and set."
        )
    changes = spec.get("set") or {}
    if not isinstance(changes, dict):
        raise SettingsError(f"Stack member {spec!r}: 'set' must map settings to values.")
    assignments = [f"{key}={json.dumps(value)}" for key, value in changes.items()]
    settings = resolve(spec.get("model"), spec.get("preset"), assignments=assignments,
                       overrides={"seed": seed})  # fmt: skip
    if settings["model"] == "stack":
        raise SettingsError("A stack cannot be a member of a stack.")
    return str(spec.get("preset") or spec.get("model")), settings


def decode_size(settings: Settings) -> int:
    """The square size a member's photos are decoded at."""
    geometry = get_model(settings["model"]).geometry(settings)
    if not isinstance(geometry, Resize):
        raise SettingsError(
            f"Stack member {settings['preset'] or settings['model']}: its photos are "
            "cropped when decoded; a stack's members must decode at a plain square size."
        )
    return geometry.size


class StackedGrader(ClassifierMixin, BaseEstimator):
    """Members' probabilities (log, clipped at 1e-4) -> multinomial logistic regression.

    Parameters
    ----------
    members : sequence
        Presets or families (default transfer, cnn-fast, colour-texture), or mappings
        ``{preset: NAME, set: {key: value}}``.
    inner_cv : int
        Fruit-grouped inner folds the meta-learner's training probabilities come from.
        Each member is trained ``inner_cv + 1`` times.
    meta_c : float
        Inverse regularisation of the meta-learner.
    seed : int
        Seed of the inner folds and of every member.

    Attributes
    ----------
    members_ : list of fitted estimators, each refit on every training photo.
    inner_fold_ : (n_photos,) the inner fold each training photo was held out in.
    inner_proba_ : (n_photos, n_members, n_grades) what the meta-learner was fit on, as
        probabilities; row i from the member model of fold ``inner_fold_[i]``.
    inner_truth_ : (n_photos,) the grade codes it was fit to.
    """

    def __init__(
        self,
        members: Sequence[Any] = DEFAULT_MEMBERS,
        inner_cv: int = 3,
        meta_c: float = 1.0,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.members = members
        self.inner_cv = inner_cv
        self.meta_c = meta_c
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress

    def check_params(self) -> None:
        if not isinstance(self.inner_cv, int) or isinstance(self.inner_cv, bool):
            raise SettingsError(f"inner_cv must be a whole number of folds, got {self.inner_cv!r}.")
        if self.inner_cv < 2:
            raise SettingsError(f"inner_cv must be at least 2 folds, got {self.inner_cv}.")
        if not isinstance(self.meta_c, (int, float)) or self.meta_c <= 0:
            raise SettingsError(f"meta_c must be a number above 0, got {self.meta_c!r}.")
        if isinstance(self.members, (str, dict)) or len(self.members) < 2:
            raise SettingsError(
                f"A stack needs a list of at least 2 members, got {self.members!r}."
            )
        self.resolved_members()

    def resolved_members(self) -> list[tuple[str, Settings]]:
        """Each member's label and settings (a label repeated gets its position added)."""
        resolved = [member_settings(spec, self.seed) for spec in self.members]
        labels = [label for label, _ in resolved]
        return [
            (label if labels.count(label) == 1 else f"{label}-{i}", settings)
            for i, (label, settings) in enumerate(resolved)
        ]

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None) -> StackedGrader:
        self.check_params()
        y = np.asarray(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        try:
            splits = kfold(codes, self.inner_cv, groups, self.seed)
        except DatasetError as exc:
            raise SettingsError(
                f"The stack's inner folds (inner_cv={self.inner_cv}) on {len(y)} training "
                f"photos: {exc} Lower it with --set inner_cv=2, or add photos."
            ) from None
        self.inner_truth_ = codes
        self.inner_fold_ = np.empty(len(y), dtype=np.int64)
        for number, (_, test) in enumerate(splits):
            self.inner_fold_[test] = number
        resolved = self.resolved_members()
        self.member_labels_ = [label for label, _ in resolved]
        self.member_settings_ = [settings for _, settings in resolved]
        self.inner_proba_ = np.zeros((len(y), len(resolved), len(self.classes_)))
        self.members_ = []
        for j, (label, settings) in enumerate(resolved):
            family = get_model(settings["model"])
            photos = resize_images(X, decode_size(settings))
            shared = family.prepare(family.build(settings), photos)
            for number, (train, test) in enumerate(splits):
                model = self._member(settings, label, f"inner-{number}")
                fold = FoldData(photos, y, groups, train, test, shared)
                self._fit_inner(family, model, fold, label, number)
                proba, _ = family.grade_fold(model, fold)
                self.inner_proba_[test, j] = in_columns(proba, model.classes_, self.classes_)
            model = self._member(settings, label, "all")
            everything = np.arange(len(y))
            family.fit_fold(model, FoldData(photos, y, groups, everything, everything[:0], shared))
            family.attach(model, None, False, False)
            self.members_.append(model)
        self.meta_ = LogisticRegression(C=self.meta_c, max_iter=2000)
        self.meta_.fit(self._meta_features(self.inner_proba_), codes)
        return self

    def _fit_inner(self, family: Any, model: Any, fold: FoldData, label: str, number: int) -> None:
        """One member on one inner fold; a member that cannot learn from so few photos is
        named with the photos it had, not a traceback from inside it."""
        try:
            family.fit_fold(model, fold)
        except ValueError as exc:
            counts = np.unique(np.asarray(fold.labels)[fold.train], return_counts=True)[1]
            raise DatasetError(
                f"The stack's member {label} cannot be trained on its inner fold {number + 1} "
                f"of {self.inner_cv} ({len(fold.train)} photos, {int(counts.min())} of the rarest "
                f"grade): {exc} Add photos of "
                "every grade, lower --set inner_cv, or train the members on their own."
            ) from None

    def _member(self, settings: Settings, label: str, part: str) -> Any:
        family = get_model(settings["model"])
        model = family.build(settings)
        where = None if self.checkpoint_dir is None else Path(self.checkpoint_dir) / label / part
        family.attach(model, where, self.resume, self.progress)
        return model

    @staticmethod
    def _meta_features(proba: np.ndarray) -> np.ndarray:
        return np.log(np.clip(proba, FLOOR, 1.0)).reshape(len(proba), -1)

    def member_probabilities(self, X: np.ndarray) -> np.ndarray:
        """``(n_photos, n_members, n_grades)``: each refit member's probabilities."""
        check_is_fitted(self, "members_")
        out = np.zeros((len(X), len(self.members_), len(self.classes_)))
        for j, (model, settings) in enumerate(
            zip(self.members_, self.member_settings_, strict=True)
        ):
            photos = resize_images(X, decode_size(settings))
            out[:, j] = model_probabilities([model], photos, self.classes_)[0]
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.meta_.predict_proba(self._meta_features(self.member_probabilities(X)))

    predicts_most_likely = True  # predict is the argmax of predict_proba (graders skip it)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def inner_scores(self) -> dict[str, float]:
        """Each member's accuracy on the inner out-of-fold photos the meta-learner learns
        from: which members carry the stack."""
        check_is_fitted(self, "members_")
        return {
            f"inner_accuracy_{label}": float(
                np.mean(self.inner_proba_[:, j].argmax(1) == self.inner_truth_)
            )
            for j, label in enumerate(self.member_labels_)
        }

    def attach(self, checkpoints: Path | None, resume: bool, progress: bool | None) -> None:
        """Where members about to train keep checkpoints (``checkpoints/LABEL/PART``); fitted
        members keep none, so the bundle holds no path."""
        self.set_params(checkpoint_dir=checkpoints, resume=resume, progress=progress)
        for model, settings in zip(
            getattr(self, "members_", []), getattr(self, "member_settings_", []), strict=True
        ):
            get_model(settings["model"]).attach(model, None, False, False)
