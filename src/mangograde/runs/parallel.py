"""Independent fits (folds, search cells, sweep values, ablation variants) on an existing
engine through joblib's backend switch: in this process (the default), ``loky`` or
``threading`` here, or a Dask or Ray cluster. No scheduler of our own.

The large inputs (the decoded photos, features computed once) are shipped to Dask workers
once (scattered), not with every task; Ray's joblib backend puts each task's arguments in
its shared-memory object store, which workers on the same machine read without a copy.
Results come back in task order, so a run is the same whatever the backend.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ..basics.errors import SettingsError, first_line
from ..basics.progress import track

BACKENDS = ("loky", "threading", "dask", "ray")
T = TypeVar("T")
R = TypeVar("R")
Mapper = Callable[..., list[Any]]


CONNECT_S = 10  # seconds to reach a cluster's scheduler


def check_backend(backend: str | None, scheduler: str | None) -> None:
    """Refuse an unknown backend, or a scheduler address without a cluster backend."""
    if backend is not None and backend not in BACKENDS:
        raise SettingsError(f"Unknown --backend {backend!r}. Valid: {', '.join(BACKENDS)}.")
    if scheduler and backend not in ("dask", "ray"):
        raise SettingsError("--scheduler is the address of a Dask or Ray cluster: add --backend.")
    if scheduler and backend == "dask" and not _address_ok(scheduler):
        raise SettingsError(
            f"--scheduler {scheduler!r} is not a Dask scheduler address such as "
            "tcp://10.0.0.5:8786 (scheme tcp, tls or ucx; a port of 1 to 65535)."
        )


def _address_ok(address: str) -> bool:
    found = re.fullmatch(
        r"(?:(?:tcp|tls|ucx)://)?([A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})", address
    )
    return found is not None and 0 < int(found.group(2)) < 65536


def _mapper(n_jobs: int, streamed: bool = True) -> Mapper:
    """Runs tasks with joblib (``n_jobs=1``: here, one after another), in task order;
    ``streamed``: results arrive one by one (progress per task), else all at the end."""
    import joblib

    def run_all(
        function: Callable[..., R],
        tasks: Sequence[tuple[Any, ...]],
        description: str = "Working",
        progress: bool | None = False,
    ) -> list[R]:
        runner = joblib.Parallel(n_jobs=n_jobs, return_as="generator" if streamed else "list")
        done = runner(joblib.delayed(function)(*task) for task in tasks)
        return list(track(done, len(tasks), description, progress))

    return run_all


@contextmanager
def engine(
    backend: str | None, scheduler: str | None = None, shared: Sequence[Any] = ()
) -> Iterator[Mapper]:
    """``with engine(...) as run_all: results = run_all(function, tasks, "Fitting", progress)``.

    ``shared``: objects that appear in many tasks (by identity), shipped to workers once.
    """
    check_backend(backend, scheduler)
    if backend is None:
        yield _mapper(1)
        return
    import joblib

    on_joblib = _mapper(-1)
    if backend == "dask":
        with _dask_client(scheduler), joblib.parallel_config("dask", scatter=list(shared)):
            yield on_joblib
    elif backend == "ray":
        with _ray(scheduler), joblib.parallel_config("ray"):
            yield _mapper(-1, streamed=False)  # Ray's backend returns lists only
    else:
        with joblib.parallel_config(backend):
            yield on_joblib


@contextmanager
def _dask_client(scheduler: str | None) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SettingsError(
            "--backend dask needs Dask: pip install 'mangograde[dask]' (dask[distributed])."
        ) from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=f"{CONNECT_S}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SettingsError(
                f"Cannot reach the Dask scheduler at {scheduler} within {CONNECT_S} s "
                f"({first_line(exc)}). Is the "
                "cluster up, and is the address right?"
            ) from None
        with client:
            yield client
        return
    # A cluster sized to this machine: one single-threaded worker process per core.
    workers = os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextmanager
def _ray(address: str | None) -> Iterator[None]:
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError:
        raise SettingsError("--backend ray needs Ray: pip install 'ray[default]'.") from None
    register_ray()
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
