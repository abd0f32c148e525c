"""Sphinx configuration of the aiida-rlpath documentation (MyST Markdown, sphinx-click)."""

import aiida_rlpath

project = 'aiida-rlpath'
author = 'The aiida-rlpath developers'
copyright = '2026, The aiida-rlpath developers'
version = release = aiida_rlpath.__version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.intersphinx',
    'sphinx_click',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
myst_enable_extensions = ['colon_fence', 'deflist']
myst_heading_anchors = 3
exclude_patterns = ['_build']
nitpicky = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
intersphinx_mapping = {}  # offline builds: no inventories are fetched

try:
    import furo  # noqa: F401

    html_theme = 'furo'
except ImportError:  # the `test` extra builds with Sphinx's own theme
    html_theme = 'alabaster'
html_title = f'aiida-rlpath {release}'
