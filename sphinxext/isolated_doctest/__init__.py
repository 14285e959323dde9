"""Run Sphinx doctests in fresh, isolated processes."""
