"""``python -m hashrepro.reporting``: the Table 2 run (see :mod:`hashrepro.reporting.table2`)."""

from hashrepro.reporting.table2 import main

raise SystemExit(main())
