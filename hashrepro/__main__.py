"""``python -m hashrepro``: the same command line as ``hashrepro`` and ``lightning``."""

from hashrepro.cli import main

if __name__ == "__main__":
    main()
