"""The reproduction's Table 2 (``python -m hashrepro.reporting``; see :mod:`.table2`)."""
