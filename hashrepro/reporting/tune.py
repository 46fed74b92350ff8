"""Equal-effort tuning on validation: one resumable Optuna study per deep method and dataset."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna

from hashrepro.callbacks import DivergenceError
from hashrepro.callbacks.pruning import Pruning
from hashrepro.reporting.grid import Cell, Dataset, Grid, Method, Paper, deep_config, study_id
from hashrepro.reporting.runner import logged, place, write_json


def settings(paper: Paper, method: Method, grid: Grid) -> dict[str, Any]:
    """What a study's result depends on besides the code (a change reruns the study)."""
    keys = ("tune_bits", "max_epochs", "patience")
    return {
        "search": method.search,
        "n_trials": grid.trials,
        **{k: getattr(paper, k) for k in keys},
    }


def trial_score(grid: Grid, cell: Cell, values: dict[str, Any], out: Path, trial: Any) -> float:
    """Train one trial's configuration (no test, no checkpoints); its best validation mAP."""
    from hashrepro.cli import make_cli

    name = study_id(cell.paper, cell.dataset, cell.method)
    config = deep_config(grid, cell, values)
    config["checkpoint"].update(save_top_k=0, save_last=False)
    folder = out / "tuning" / "runs"
    path = place(config, out, folder / name, folder / f"{name}.yaml")
    cli = make_cli(["--config", str(path)], run=False)
    cli.trainer.callbacks.append(Pruning(trial))
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    except DivergenceError:
        return 0.0  # a configuration that diverges scores nothing
    return float(cli.trainer.early_stopping_callback.best_score)


def suggest(trial: optuna.Trial, space: dict[str, Any]) -> dict[str, Any]:
    """Values for ``{cli key: [low, high, "log" | "linear"] | [choice, ...]}``."""
    return {
        key: trial.suggest_float(key, spec[0], spec[1], log=spec[2] == "log")
        if len(spec) == 3 and spec[2] in ("log", "linear")
        else trial.suggest_categorical(key, list(spec))
        for key, spec in space.items()
    }


def tune(grid: Grid, paper: Paper, dataset: Dataset, method: Method, out: Path) -> dict[str, Any]:
    """Run the study's remaining trials; write and return its result."""
    name, folder = study_id(paper, dataset, method), out / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / f"{name}.json").exists() and tuned(grid, out, paper, dataset, method) is None:
        (folder / f"{name}.db").unlink(missing_ok=True)  # run under other settings: start over
    optuna.logging.set_verbosity(logging.WARNING)
    storage, sampler = f"sqlite:///{folder / f'{name}.db'}", optuna.samplers.TPESampler(seed=0)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                                direction="maximize", sampler=sampler, pruner=pruner)  # fmt: skip
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    cell = Cell(paper, dataset, method, paper.tune_bits, 0)
    remaining = grid.trials - len(study.get_trials(states=done))
    if remaining > 0:
        with logged(out / "logs" / f"tune__{name}.log"):
            study.optimize(lambda t: trial_score(grid, cell, suggest(t, method.search), out, t),
                           remaining)  # fmt: skip
    trials = []
    for t in study.get_trials(states=done):
        trials.append({"number": t.number, "value": t.value, "params": t.params})
        trials[-1].update(state=t.state.name, epochs=len(t.intermediate_values))
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(complete, key=lambda t: t["value"]) if complete else None
    result = {"study": name, **settings(paper, method, grid), "trials": trials, "best": best}
    write_json(folder / f"{name}.json", result)
    return result


def tuned(grid: Grid, out: Path, paper: Paper, dataset: Dataset, method: Method) -> dict | None:
    """A study's best values under the current settings (``{}``: none to tune; ``None``: to run)."""
    if not method.search or grid.trials < 1:
        return {}
    path = out / "tuning" / f"{study_id(paper, dataset, method)}.json"
    try:
        result = json.loads(path.read_text())
    except OSError:
        return None
    if {k: result.get(k) for k in settings(paper, method, grid)} != settings(paper, method, grid):
        return None
    return dict(result["best"]["params"]) if result.get("best") else {}
