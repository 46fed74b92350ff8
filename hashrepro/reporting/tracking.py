"""W&B for the grid: per-cell runs grouped by table and dataset, and one summary run per table.

Offline by default: ``WANDB_MODE`` is honoured (``online`` syncs, ``disabled`` turns W&B off);
runs are written under ``<out>/wandb``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hashrepro.cli import WANDB_LOGGER


def wandb_mode() -> str:
    """The W&B mode in effect: ``WANDB_MODE``, ``offline`` when unset."""
    return os.environ.get("WANDB_MODE", "offline") or "offline"


def wandb_enabled(requested: bool) -> bool:
    """Whether to log to W&B at all (``requested`` and not ``WANDB_MODE=disabled``)."""
    return requested and wandb_mode() != "disabled"


def logger_spec(project: str, save_dir: Path, group: str, name: str, tags: list[str]) -> dict:
    """The ``--trainer.logger`` value of a deep cell (the CLI appends dataset/model/bits tags).

    The mode is left to ``WANDB_MODE`` (offline unless set): Lightning's ``offline=True`` would
    overwrite ``WANDB_MODE`` with ``dryrun`` for the rest of the process.
    """
    save_dir.mkdir(parents=True, exist_ok=True)
    return {
        "class_path": WANDB_LOGGER,
        "init_args": {
            "project": project,
            "save_dir": str(save_dir),
            "group": group,
            "job_type": "cell",
            "name": name,
            "tags": tags,
        },
    }


def finish_active_run(exit_code: int = 0) -> None:
    """Finish the process's active W&B run, if any (quietly)."""
    try:
        import wandb
    except ImportError:  # pragma: no cover
        return
    if wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def _init(project: str, save_dir: Path, **kwargs: Any) -> Any:
    import wandb

    save_dir.mkdir(parents=True, exist_ok=True)
    mode = "online" if wandb_mode() == "online" else "offline"
    return wandb.init(project=project, dir=str(save_dir), mode=mode, **kwargs)


def log_cell_summary(run: Any, summary: dict[str, float]) -> None:
    """Add the table figures of a cell to its run's summary."""
    for key, value in summary.items():
        run.summary[key] = value


def classic_cell_run(
    project: str,
    save_dir: Path,
    group: str,
    name: str,
    tags: list[str],
    config: dict[str, Any],
    summary: dict[str, float],
) -> None:
    """One finished W&B run for a classic cell (no training curve: the figures only)."""
    finish_active_run()
    run = _init(
        project, save_dir, group=group, job_type="cell", name=name, tags=tags, config=config
    )
    try:
        log_cell_summary(run, summary)
    finally:
        run.finish()


def summary_run(
    project: str,
    save_dir: Path,
    group: str,
    name: str,
    config: dict[str, Any],
    columns: list[str],
    rows: list[list[Any]],
    images: dict[str, Path],
) -> None:
    """The table's summary run (``job_type="table"``): the table and every plot."""
    import wandb

    finish_active_run()
    run = _init(project, save_dir, group=group, job_type="table", name=name, config=config)
    try:
        payload: dict[str, Any] = {"table2": wandb.Table(columns=columns, data=rows)}
        for key, path in images.items():
            payload[f"plots/{key}"] = wandb.Image(str(path))
        run.log(payload)
    finally:
        run.finish()
