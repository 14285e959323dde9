"""Run the doctests of a Sphinx project: ``python -m sphinxext.isolated_doctest --help``."""

from __future__ import annotations

import sys

from sphinxext.isolated_doctest._cli import main

if __name__ == "__main__":
    sys.exit(main())
