"""``python -m hashrepro.reporting``: the Table 2 run (see :mod:`hashrepro.reporting.table2`)."""

import sys

from hashrepro.reporting.table2 import main

sys.exit(main())
