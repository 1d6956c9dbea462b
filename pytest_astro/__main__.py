"""`python -m pytest_astro ...` is the same as the `pytest-astro` command."""

import sys

from pytest_astro.cli import main

if __name__ == "__main__":
    sys.exit(main())
