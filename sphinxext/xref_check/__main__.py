"""Run the command line: ``python -m sphinxext.xref_check --help``."""

from __future__ import annotations

import sys

from sphinxext.xref_check._cli import main

if __name__ == "__main__":
    sys.exit(main())
