"""``CNNClassifier``: train a CNN on uint8 photos as a scikit-learn estimator.

The loop is the torchvision reference's, as flat stages: ``_train_one_epoch``,
``_evaluate``, then a checkpoint that a killed run resumes from (``cnn_checkpoints``).
Its setting-free parts are in ``cnn_training``, grading and the penultimate features in
``cnn_grading``, adapting to other photos in ``cnn_adapt``.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..basics.errors import SettingsError
from ..basics.progress import Bar
from ..data.splits import holdout
from ..features.pixels import check_images
from ..features.transforms import resize_batch
from . import ddp
from .cnn import build_network, with_head
from .cnn_adapt import fit_last_step, last_step, reestimate_batchnorm
from .cnn_checkpoints import ADDED, CHECKPOINT, fingerprint, load_checkpoint, save_checkpoint
from .cnn_grading import last_linear, log_probabilities
from .cnn_training import (
    CHANNELS_LAST,
    augmenter,
    average_into,
    copy_state,
    lr_at,
    make_optimizer,
    pick_device,
    share,
)

__all__ = ["CHANNELS_LAST", "CHECKPOINT", "CNNClassifier", "pick_device"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")
AUGMENTS = ("batch", "geometric", "per-photo", "none")
PRECISIONS = ("fp32", "bf16")
# Settings that do not change what is learned; a resumed run may differ in these.
_RUNTIME = ("device", "threads", "checkpoint_dir", "resume", "progress")


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Grade ``(n, H, W, 3)`` uint8 photos with a CNN trained from scratch.

    Photos are resized once to ``size * 256 / 224`` and centre-cropped to ``size``
    (the study's 256 -> 224). Training augments them with the study's flips, rotation,
    perspective and colour jitter.

    Parameters
    ----------
    architecture : str
        A registered network (``study-cnn``, ``fast-cnn``).
    size : int
        Input size in pixels, a multiple of 32.
    order, activation, pooling, dropout, dense_layers, width, stem_stride
        Architecture options (each network takes those it knows; ``stem_stride`` 2 makes
        the study's first convolution stride 2, a quarter of its multiply-adds).
    optimizer : {"sgd", "adam", "adamw"}
        SGD uses ``momentum``; all use ``weight_decay``.
    lr : float
        Peak learning rate.
    schedule : {"cosine", "step", "constant"}
        Cosine decay per step after ``warmup_epochs`` of linear warm-up, or x
        ``step_gamma`` every ``step_size`` epochs.
    epochs, batch_size, label_smoothing
    augment : {"batch", "geometric", "per-photo", "none"}
        ``batch``: the study's augmentation drawn per photo, applied to the whole batch
        in one resampling; ``geometric``: the same without its colour jitter;
        ``per-photo``: the same with torchvision v2, photo by photo.
    head : {"softmax", "cumulative"}
        ``cumulative``: an ordinal head (one score and ordered thresholds,
        :class:`.cnn.CumulativeLink`) in place of the last linear layer.
    backbone, weights, bn_momentum
        Options of the ``pretrained`` architecture (see :mod:`.pretrained`).
    body_lr : float
        Learning rate of ``network.features`` as a share of ``lr`` (discriminative
        rates: the head learns at ``lr``); 1 trains all at ``lr``.
    freeze_epochs : int
        Epochs at the start that train the head alone (``features`` frozen).
    ema : float
        0, or the decay of an exponential moving average of the weights, updated every
        step; the average is what is evaluated and kept (e.g. 0.98).
    tta : bool
        Predict with the mean of the photo and its three flips.
    precision : {"fp32", "bf16"}
        ``bf16``: training steps under bfloat16 autocast (fast on GPUs and on CPUs with
        AVX-512 BF16 or AMX; slower elsewhere); weights, their updates and grading stay
        fp32.
    validation_fraction : float
        Share of the fruits (``groups``) held out of training for early stopping and
        keeping the best epoch; 0 uses ``eval_set`` if given.
    patience : int
        Stop after this many epochs without a better validation loss (0: never).
    device : str
        ``auto`` (cuda, then mps, then cpu), or a torch device.
    threads : int or None
        CPU threads for torch (None: torch's default).
    seed : int
    checkpoint_dir : path or None
        Write ``checkpoint.pt`` there after every epoch.
    resume : bool
        Continue from ``checkpoint_dir``'s checkpoint when there is one.
    progress : bool or None
        Progress bar with loss and speed (None: on a terminal only).
    """

    def __init__(
        self,
        architecture: str = "study-cnn",
        size: int = 128,
        order: str = "act-bn",
        activation: str = "prelu",
        pooling: str = "max",
        dropout: float = 0.5,
        dense_layers: int = 3,
        width: int = 32,
        stem_stride: int = 1,
        optimizer: str = "sgd",
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        schedule: str = "cosine",
        warmup_epochs: int = 0,
        step_size: int = 10,
        step_gamma: float = 0.1,
        epochs: int = 30,
        batch_size: int = 32,
        label_smoothing: float = 0.0,
        augment: str = "batch",
        head: str = "softmax",
        backbone: str = "lite0",
        weights: str = "imagenet",
        bn_momentum: float = 0.1,
        body_lr: float = 1.0,
        freeze_epochs: int = 0,
        ema: float = 0.0,
        tta: bool = False,
        precision: str = "fp32",
        validation_fraction: float = 0.0,
        patience: int = 0,
        device: str = "auto",
        threads: int | None = None,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool | None = False,
    ) -> None:
        self.architecture = architecture
        self.size = size
        self.order = order
        self.activation = activation
        self.pooling = pooling
        self.dropout = dropout
        self.dense_layers = dense_layers
        self.width = width
        self.stem_stride = stem_stride
        self.optimizer = optimizer
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup_epochs = warmup_epochs
        self.step_size = step_size
        self.step_gamma = step_gamma
        self.epochs = epochs
        self.batch_size = batch_size
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.head = head
        self.backbone = backbone
        self.weights = weights
        self.bn_momentum = bn_momentum
        self.body_lr = body_lr
        self.freeze_epochs = freeze_epochs
        self.ema = ema
        self.tta = tta
        self.precision = precision
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.threads = threads
        self.seed = seed
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.progress = progress

    # -- building -----------------------------------------------------------------

    def _network(self, n_classes: int) -> torch.nn.Module:
        """The architecture, built with those of our parameters that it takes, and its head."""
        options = {k: v for k, v in self.get_params().items() if k not in ("architecture", "size")}
        network = build_network(self.architecture, n_classes, self.size, **options)
        return with_head(network, self.head, n_classes)

    def check_params(self) -> None:
        """Every setting, before training: the network is built once to check its own."""
        self._check_settings()
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads >= 1):
            raise SettingsError(f"threads must be 1 or more (or null), got {self.threads!r}.")
        device = pick_device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SettingsError(
                f"device {self.device!r}: this machine has no CUDA GPU that torch can use. "
                "Use device=auto or cpu."
            )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise SettingsError(f"device {self.device!r}: no Apple GPU here. Use auto or cpu.")
        self._network(2)

    def _check_settings(self) -> None:
        for name, value, valid in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("schedule", self.schedule, SCHEDULES),
            ("augment", self.augment, AUGMENTS),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in valid:
                raise SettingsError(f"Unknown {name} {value!r}. Valid: {', '.join(valid)}.")
        if self.epochs < 1 or self.batch_size < 2:
            raise SettingsError(
                f"epochs must be at least 1 and batch_size at least 2 (BatchNorm needs two "
                f"photos), got epochs={self.epochs}, batch_size={self.batch_size}."
            )
        if not 0.0 <= self.ema < 1.0:
            raise SettingsError(
                f"ema must be 0 (off) or a decay below 1 (e.g. 0.98), got {self.ema}."
            )
        if self.resume and self.checkpoint_dir is None:
            raise SettingsError("resume needs a checkpoint_dir to resume from.")

    def _make_optimizer(self, network: torch.nn.Module) -> torch.optim.Optimizer:
        return make_optimizer(network, self.optimizer, self.lr, self.momentum,
                              self.weight_decay, self.body_lr)  # fmt: skip

    def _lr_at(self, epoch: float) -> float:
        """Learning rate at a fractional epoch."""
        return lr_at(epoch, self.lr, self.schedule, self.warmup_epochs, self.epochs,
                     self.step_size, self.step_gamma)  # fmt: skip

    def _training_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k not in _RUNTIME}

    # -- fitting ------------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> CNNClassifier:
        """Train on photos ``X`` with grades ``y``.

        ``groups`` (fruit ids) keep a fruit's photos on one side of the validation
        split. With ``validation_fraction`` 0, ``eval_set`` = (photos, grades) is the
        validation set: scored after every epoch (the curves) and, only when ``patience``
        is set, used to stop and keep the best epoch.
        """
        self._check_settings()
        self.classes_, y_codes = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise SettingsError("Training needs photos of at least two grades.")
        if self.threads:
            torch.set_num_threads(int(self.threads))
        device = pick_device(self.device)
        train_idx, val_idx = np.arange(len(X)), np.array([], dtype=np.int64)
        if self.validation_fraction:
            train_idx, val_idx = holdout(y_codes, self.validation_fraction, groups, self.seed)
        photos = self._photos(X)
        labels = torch.from_numpy(y_codes.astype(np.int64))
        validation = None
        if len(val_idx):
            validation = (photos[val_idx], labels[val_idx])
        elif eval_set is not None:
            validation = self._encode_eval(eval_set)

        if self.patience and validation is None:
            raise SettingsError(
                "patience (early stopping) needs validation photos: set validation_fraction "
                "or pass eval_set."
            )
        torch.manual_seed(self.seed)  # initial weights and dropout
        network = self._network(len(self.classes_)).to(device, memory_format=CHANNELS_LAST)
        # The network that is evaluated and kept: the moving average, or the network.
        kept = copy.deepcopy(network) if self.ema else network
        optimizer = self._make_optimizer(network)
        rank, processes = ddp.world()
        generator = torch.Generator().manual_seed(self.seed)  # shuffling and augmentation
        run = {"epoch": 0, "history": [], "best": None, "best_loss": float("inf"), "stale": 0}
        path = Path(self.checkpoint_dir) / CHECKPOINT if self.checkpoint_dir else None
        data = fingerprint(X, y_codes) if path is not None else ""
        if self.resume and path is not None and path.is_file():
            run = self._restore(path, network, kept, optimizer, generator, data)
        trained = ddp.data_parallel(network)  # under torchrun; else the network itself

        steps = len(train_idx) // self.batch_size + (len(train_idx) % self.batch_size > 1)
        total = steps * (self.epochs - run["epoch"])
        shown = self.progress if rank == 0 else False
        with Bar(total, "Training CNN", shown, every=steps) as bar:  # a line an epoch
            for epoch in range(run["epoch"], self.epochs):
                if run["stale"] >= self.patience > 0:
                    break
                record = self._train_one_epoch(
                    (trained, kept),
                    optimizer,
                    generator,
                    photos[train_idx],
                    labels[train_idx],
                    epoch,
                    bar,
                )
                if validation is not None:
                    loss, acc = self._evaluate(kept, *validation, device)
                    record.update(val_loss=loss, val_acc=acc)
                    if loss < run["best_loss"]:
                        run["best_loss"], run["stale"] = loss, 0
                        if self.validation_fraction or self.patience:  # the epoch to keep
                            run["best"] = copy_state(kept)
                    else:
                        run["stale"] += 1
                run["history"].append(record)
                run["epoch"] = epoch + 1
                if path is not None and rank == 0:  # one writer; every process reads it
                    self._checkpoint(path, (network, kept), optimizer, generator, run, data)
        if run["best"] is not None:
            kept.load_state_dict(run["best"])
        if processes > 1:  # a plain network again, as one process would have trained it
            kept = self._rebuilt(kept.state_dict(), device)
        self.module_ = kept.eval()
        self.history_ = run["history"]
        self.n_epochs_ = run["epoch"]
        return self

    def _encode_eval(self, eval_set: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, ...]:
        images, grades = eval_set
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            codes = [lookup[g] for g in np.asarray(grades).tolist()]
        except KeyError as exc:
            raise SettingsError(
                f"eval_set has grade {exc.args[0]!r}, not seen in training."
            ) from None
        return self._photos(images, "eval_set photos"), torch.tensor(codes, dtype=torch.int64)

    def _photos(self, images: np.ndarray, what: str = "photos") -> torch.Tensor:
        """uint8 ``(n, H, W, 3)`` -> ``(n, 3, R, R)`` at the decode size of ``size``."""
        images = np.ascontiguousarray(check_images(images, what))  # a flipped view too
        return resize_batch(torch.from_numpy(images).permute(0, 3, 1, 2), self.size).contiguous()

    def _train_one_epoch(
        self,
        networks: tuple[torch.nn.Module, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        photos: torch.Tensor,
        labels: torch.Tensor,
        epoch: int,
        bar: Bar,
    ) -> dict[str, Any]:
        network, kept = networks
        device = next(network.parameters()).device
        network.train()
        body = getattr(ddp.plain(network), "features", None)
        if body is not None and self.freeze_epochs:
            for parameter in body.parameters():
                parameter.requires_grad_(epoch >= self.freeze_epochs)
        augment = augmenter(self.augment, self.size, generator)
        order = torch.randperm(len(photos), generator=generator)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # BatchNorm cannot train on one photo; under torchrun each process needs one.
        batches = [b for b in batches if len(b) > max(1, ddp.world()[1] - 1)]
        loss_sum = correct = seen = 0.0
        data_s = step_s = 0.0
        for number, batch in enumerate(batches):
            for group in optimizer.param_groups:
                group["lr"] = self._lr_at(epoch + number / len(batches)) * group.get("lr_scale", 1)
            start = time.perf_counter()
            x, t = share(augment, photos[batch], labels[batch])
            x, t = x.to(device, memory_format=CHANNELS_LAST), t.to(device)
            middle = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=self.precision == "bf16"):
                logits = network(x)
            logits = logits.float()
            if ddp.world()[1] > 1:
                loss = ddp.share_loss(logits, t, len(batch), self.label_smoothing)
            else:
                loss = F.cross_entropy(logits, t, label_smoothing=self.label_smoothing)
            loss.backward()
            optimizer.step()
            if kept is not ddp.plain(network):
                step = epoch * len(batches) + number  # a short memory early: tracks sooner
                average_into(kept, ddp.plain(network), min(self.ema, (1 + step) / (10 + step)))
            loss_sum += loss.item() * len(batch) / ddp.world()[1]  # this share's sum
            correct += (logits.argmax(1) == t).sum().item()
            seen += len(t)
            end = time.perf_counter()
            data_s, step_s = data_s + middle - start, step_s + end - middle
            bar.advance(
                1,
                f"epoch {epoch + 1}/{self.epochs} loss {loss_sum / seen:.3f} "
                f"{seen / (data_s + step_s):.0f} photos/s",
            )
        loss_sum, correct, seen = ddp.sum_over_processes([loss_sum, correct, seen])
        return {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "data_s": data_s,
            "step_s": step_s,
        }

    def _rebuilt(self, state: dict[str, torch.Tensor], device: Any) -> torch.nn.Module:
        network = self._network(len(self.classes_)).to(device, memory_format=CHANNELS_LAST)
        network.load_state_dict(state)
        return network

    def _evaluate(
        self, network: torch.nn.Module, photos: torch.Tensor, labels: torch.Tensor, device: Any
    ) -> tuple[float, float]:
        logits = self._logits(network, photos, device)
        loss = F.cross_entropy(logits, labels).item()
        return loss, (logits.argmax(1) == labels).float().mean().item()

    def _logits(
        self,
        network: torch.nn.Module,
        photos: torch.Tensor,
        device: Any,
        features: list[torch.Tensor] | None = None,
        tta: bool | None = None,
    ) -> torch.Tensor:
        """Log-probabilities (of the mean over the flips, with ``tta``). ``features``, when
        given, receives what the last layer reads of each batch's unflipped view."""
        tta = self.tta if tta is None else tta
        return log_probabilities(network, photos, device, self.size, tta, len(self.classes_),
                                 features)  # fmt: skip

    # -- adapting to another camera or orchard --------------------------------------

    def adapt(
        self,
        X: np.ndarray,
        y: np.ndarray | None = None,
        epochs: int = 150,
        lr: float = 0.03,
        body: str = "frozen",
        progress: bool | None = False,
    ) -> CNNClassifier:
        """A copy of this fitted network adapted to photos ``X``: its BatchNorm statistics
        measured again on them, then (with grades ``y``, of this network's ``classes_``)
        ``epochs`` of fine-tuning at ``lr``: with the body ``frozen``, the last layer alone
        on the photos' penultimate features (computed once: seconds, even for a pretrained
        backbone); with ``train``, the whole network with the training augmentation. This
        network is unchanged."""
        check_is_fitted(self, "module_")
        if body not in ("frozen", "train"):
            raise SettingsError(f"adapt.body must be frozen or train, not {body!r}.")
        adapted = copy.deepcopy(self)
        network = adapted.module_
        reestimate_batchnorm(network, self._photos(X, "photos to adapt on"), self.size)
        if y is None:
            return adapted
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = sorted({str(g) for g in np.asarray(y).tolist() if g not in lookup})
        if unknown:
            raise SettingsError(f"Grades {', '.join(unknown)} are not this run's "
                                f"({', '.join(map(str, self.classes_))}).")  # fmt: skip
        labels = torch.tensor([lookup[g] for g in np.asarray(y).tolist()], dtype=torch.int64)
        if body == "frozen":
            adapted._fit_last_step(X, labels, epochs, lr, progress)
        else:
            adapted._fine_tune(X, labels, epochs, lr, progress)
        adapted.module_ = network.eval()
        return adapted

    def _fit_last_step(
        self, X: np.ndarray, labels: torch.Tensor, epochs: int, lr: float, progress: bool | None
    ) -> None:
        """Train the network's last step (its last linear layer, or the ordinal head) on
        the penultimate features of ``X``, everything before it frozen."""
        features = torch.from_numpy(self._graded(X, tta=False)[1]).float()
        fit_last_step(last_step(self.module_), features, labels, epochs, lr,
                      weight_decay=self.weight_decay, label_smoothing=self.label_smoothing,
                      batch_size=self.batch_size, seed=self.seed, progress=progress)  # fmt: skip

    def _fine_tune(
        self, X: np.ndarray, labels: torch.Tensor, epochs: int, lr: float, progress: bool | None
    ) -> None:
        """Train the whole network on ``X`` with the training augmentation."""
        keep = {k: getattr(self, k) for k in ("lr", "epochs", "warmup_epochs", "schedule",
                                               "ema", "freeze_epochs", "batch_size")}  # fmt: skip
        network = self.module_
        size = max(2, min(self.batch_size, len(X)))
        self.set_params(lr=lr, epochs=epochs, warmup_epochs=0, schedule="cosine", ema=0.0,
                        freeze_epochs=0, batch_size=size)  # fmt: skip
        photos = self._photos(X, "photos to adapt on")
        optimizer = self._make_optimizer(network)
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        steps = max(1, -(-len(X) // self.batch_size))
        with Bar(steps * epochs, "Adapting CNN", progress, every=steps) as bar:
            for epoch in range(epochs):
                self._train_one_epoch((network, network), optimizer, generator, photos, labels,
                                      epoch, bar)  # fmt: skip
        self.set_params(**keep)

    # -- checkpoints --------------------------------------------------------------

    def _checkpoint(
        self,
        path: Path,
        networks: tuple[torch.nn.Module, torch.nn.Module],
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        run: dict[str, Any],
        fingerprint: str,
    ) -> None:
        """Write the run so far to ``path`` (tests replace this to kill a run)."""
        save_checkpoint(path, self._training_params(), self.classes_.tolist(), networks,
                        optimizer, generator, run, fingerprint)  # fmt: skip

    def _restore(
        self,
        path: Path,
        network: torch.nn.Module,
        kept: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        fingerprint: str,
    ) -> dict[str, Any]:
        return load_checkpoint(path, self._training_params(), self.classes_.tolist(), network,
                               kept, optimizer, generator, fingerprint)  # fmt: skip

    # -- predicting ---------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "module_")
        device = next(self.module_.parameters()).device
        return torch.softmax(self._logits(self.module_, self._photos(X), device), 1).numpy()

    predicts_most_likely = True  # predict is the argmax of predict_proba (graders skip it)

    def embed(self, X: np.ndarray) -> np.ndarray:
        """``(n, d)`` features of photos ``X``: what the network's last layer reads (its
        penultimate layer), one view each, for the familiarity model."""
        return self._graded(X, tta=False)[1]

    def proba_and_embed(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_proba` and :meth:`embed` of photos ``X`` in one pass."""
        return self._graded(X)

    def _graded(self, X: np.ndarray, tta: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "module_")
        device = next(self.module_.parameters()).device
        found: list[torch.Tensor] = []
        logits = self._logits(self.module_, self._photos(X), device, found, tta)
        width = last_linear(self.module_).in_features
        features = torch.cat(found).numpy() if found else np.zeros((0, width))
        return torch.softmax(logits, 1).numpy(), features

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    # -- bundles: weights as plain arrays, the network rebuilt from the parameters ----

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if state.get("checkpoint_dir") is not None:
            state["checkpoint_dir"] = str(state["checkpoint_dir"])
        module = state.pop("module_", None)
        if module is not None:
            state["weights_"] = {
                k: v.detach().cpu().numpy() for k, v in module.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = {**ADDED, **state}  # bundles written before these settings existed
        weights = state.pop("weights_", None)
        self.__dict__.update(state)
        if weights is not None:
            state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
            self.module_ = self._rebuilt(state, "cpu").eval()
