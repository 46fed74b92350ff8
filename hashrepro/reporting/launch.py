"""Where the grid's tasks run: this machine (a process pool) or SLURM (through submitit)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed, wait
from pathlib import Path
from typing import Any

import torch

Task = tuple[str, Callable[..., Any], tuple[Any, ...]]  # (name, function, arguments)
Done = Callable[[str, Any], None]  # called with a task's name and its result or exception
_STOPPING = False  # set in a worker by Ctrl-C: finish the task in progress, start none


def _on_sigint(signum: int, frame: Any) -> None:
    global _STOPPING
    _STOPPING = True
    raise KeyboardInterrupt


def _init_worker(threads: int | None) -> None:
    signal.signal(signal.SIGINT, _on_sigint)
    if threads:
        torch.set_num_threads(threads)


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    if _STOPPING:
        raise RuntimeError("not run: the grid was interrupted")
    return fn(*args)


class Local:
    """Tasks here, ``jobs`` at a time (one: in this process); Ctrl-C closes the running ones."""

    def __init__(self, jobs: int = 1, threads: int | None = None, dry_run: bool = False) -> None:
        self.jobs, self.threads, self.dry_run = max(1, jobs), threads, dry_run

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        """Run every task (``dry_run``: print its name); ``done(name, result or exception)``."""
        if self.dry_run:
            print("\n".join(name for name, _, _ in tasks))
            return
        if self.jobs == 1:
            if self.threads:
                torch.set_num_threads(self.threads)
            for name, fn, args in tasks:
                try:
                    result = fn(*args)
                except Exception as err:  # noqa: BLE001  (reported through done)
                    result = err
                done(name, result)
            return
        spawn = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(self.jobs, spawn, _init_worker, (self.threads,))
        futures = {}
        try:
            futures = {pool.submit(_call, fn, args): name for name, fn, args in tasks}
            for future in as_completed(futures):
                done(futures[future], future.exception() or future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for process in multiprocessing.active_children():
                os.kill(process.pid, signal.SIGINT)  # each closes its task, starts none
            wait([f for f in futures if f.running()], timeout=60)
            raise
        pool.shutdown()


class Slurm:
    """Tasks as SLURM jobs through submitit; ``dry_run`` prints each job's ``sbatch`` options."""

    def __init__(self, folder: Path, partition: str | None, gpus: int, cpus: int, minutes: int,
                 dry_run: bool = False) -> None:  # fmt: skip
        self.folder, self.dry_run = Path(folder), dry_run
        self.params = {"slurm_partition": partition, "gpus_per_node": gpus or None}
        self.params.update(cpus_per_task=cpus, timeout_min=minutes)

    def header(self, name: str) -> str:
        """The ``sbatch`` options of a task's job (what ``--dry-run`` prints)."""
        p = self.params
        opts = {"job-name": name, "partition": p["slurm_partition"], "time": p["timeout_min"]}
        opts.update({"gpus-per-node": p["gpus_per_node"], "cpus-per-task": p["cpus_per_task"]})
        return "sbatch " + " ".join(f"--{k}={v}" for k, v in opts.items() if v is not None)

    def run(self, tasks: Sequence[Task], done: Done) -> None:
        """Submit every task as a job, then report each as it finishes (or print them)."""
        if self.dry_run:
            print("\n".join(self.header(name) for name, _, _ in tasks))
            return
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder, cluster="slurm")
        params = {k: v for k, v in self.params.items() if v is not None}
        jobs = {}
        for name, fn, args in tasks:
            executor.update_parameters(name=name, **params)
            jobs[name] = executor.submit(fn, *args)
        while jobs:
            for name in [n for n, job in jobs.items() if job.done()]:
                job = jobs.pop(name)
                done(name, job.exception() or job.result())
            time.sleep(5 if jobs else 0)
