from __future__ import annotations

pytest_plugins = ["sphinx.testing.fixtures"]
collect_ignore = ["roots"]
