"""Check cross-references against the intersphinx inventories."""
