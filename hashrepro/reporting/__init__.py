"""The reproduction's Table 2: tune, run a grid of cells resumably, aggregate, plot and log.

``python -m hashrepro.reporting [--quick] [--data default|paper] [--launcher local|slurm]`` runs
``experiments/table2.yaml``; see :mod:`hashrepro.reporting.table2`.
"""
