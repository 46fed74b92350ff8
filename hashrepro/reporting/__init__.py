"""Reproduction tables: expand a grid of runs, run them resumably, aggregate, plot and log.

``python -m hashrepro.reporting [--quick] [--data embedded|paper] [--out DIR] [--seeds N]`` runs
``experiments/table2.yaml``; see :mod:`hashrepro.reporting.table2`.
"""

from hashrepro.reporting.grid import Cell, Grid, MissingDataError, check_paper_files, load_grid
from hashrepro.reporting.runner import RunOptions, RunSummary, run_grid

__all__ = [
    "Cell",
    "Grid",
    "MissingDataError",
    "RunOptions",
    "RunSummary",
    "check_paper_files",
    "load_grid",
    "run_grid",
]
