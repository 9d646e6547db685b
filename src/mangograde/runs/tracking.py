"""Mirror a finished run folder in an experiment tracker (MLflow). The folder stays the
source of truth: everything logged is read back from it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from ..basics.errors import SettingsError, first_line, without_password
from .folder import open_run

TRACKERS = ("mlflow",)
DEFAULT_URI = "sqlite:///mlflow.db"  # MLflow 3 keeps runs in a database, not ./mlruns
EXPERIMENT = "mangograde"
# MLflow retries an unreachable server for minutes by default; the user's own settings win.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def tracker_for(track: str | None) -> str | None:
    """``--track``, or mlflow when ``MLFLOW_TRACKING_URI`` is set; None: no tracking.
    Checked before training, so a missing MLflow is said at once."""
    if track is None and os.environ.get("MLFLOW_TRACKING_URI"):
        track = "mlflow"
    if track is None:
        return None
    if track not in TRACKERS:
        raise SettingsError(f"Unknown --track {track!r}. Valid: {', '.join(TRACKERS)}.")
    _mlflow()
    return track


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise SettingsError(
            "--track mlflow needs MLflow: pip install 'mangograde[track]' (mlflow-skinny with "
            "SQLAlchemy and Alembic for its SQLite store)."
        ) from None
    return mlflow


def _flat(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"params": {"C": 1}}`` -> ``{"params.C": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _numbers(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    return {
        key: float(value)
        for key, value in _flat(record, prefix).items()
        if isinstance(value, Real) and not isinstance(value, bool)
    }


def mirror_run(path: str | Path, uri: str | None = None) -> str:
    """Log the run folder at ``path`` to MLflow: its settings as params, its metrics (per
    fold and per epoch as steps), its timing, and the folder itself as an artifact.
    Returns the MLflow run id. ``uri``: the tracking store (default
    ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``)."""
    mlflow = _mlflow()
    run = open_run(path)
    where = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    for name, value in HTTP_DEFAULTS.items():  # a server that is down: an answer in seconds
        os.environ.setdefault(name, value)
    try:
        return _log(mlflow, run, where)
    except Exception as exc:  # MLflow's own errors, the network's, a store it cannot open
        first = first_line(exc)
        raise SettingsError(
            f"The run is written in {run.path}, but MLflow at {without_password(where)} did not "
            f"take it: {without_password(first)[:300]}. Check the tracking URI and that the "
            "server is up, then train again with --track."
        ) from None


def _reach_database(where: str) -> None:
    """Connect once to a database store (MLflow itself retries for about 100 s)."""
    scheme = where.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("postgresql", "mysql", "mssql"):
        return
    import sqlalchemy

    timeout = {"connect_timeout": 10} if scheme in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(where, connect_args=timeout)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _log(mlflow: Any, run: Any, where: str) -> str:
    _reach_database(where)
    mlflow.set_tracking_uri(where)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name=run.name) as active:
        params = {k: str(v)[:6000] for k, v in _flat(run.settings).items()}
        mlflow.log_params(params)
        mlflow.log_metrics(_numbers(run.metrics))
        mlflow.log_metrics(_numbers(run.timing, "time."))
        for fold, accuracy in enumerate(run.metrics.get("accuracy_folds", [])):
            mlflow.log_metric("accuracy_fold", float(accuracy), step=fold)
        for row in run.history():
            member = f"{row.get('member')}" if row.get("member") not in (None, "") else ""
            name = f"fold{row['fold']}{'.m' + member if member else ''}"
            skip = ("fold", "member", "epoch")
            values = {f"{name}.{k}": v for k, v in row.items() if k not in skip}
            mlflow.log_metrics(_numbers(values), step=int(row["epoch"]))
        mlflow.log_artifacts(str(run.path), artifact_path="run")
        return active.info.run_id
