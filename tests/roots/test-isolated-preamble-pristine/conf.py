extensions = ['sphinxext.isolated_doctest']
isolated_doctest_preamble = """
import builtins, sys
builtins.SEEN = sorted(
    m for m in ['socket', 'ssl', 'select', 'selectors', 'threading', 'queue',
                'subprocess', 'signal', 'asyncio']
    if m in sys.modules
)
"""
