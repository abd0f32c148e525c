"""The documentation builds with warnings as errors (CLI reference included)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

DOCS = pathlib.Path(__file__).parent.parent / 'docs'


def test_docs_build_without_warnings(tmp_path):
    completed = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    cli_page = re.sub(r'<[^>]+>', '', (tmp_path / 'reference' / 'cli.html').read_text())
    assert 'aiida-rlpath setup' in cli_page
    assert 'aiida-rlpath status' in cli_page
    assert 'aiida-rlpath realize launch' in cli_page and 'aiida-rlpath realize restart' in cli_page
    assert 'aiida-rlpath demo' in cli_page
    assert 'aiida-rlpath relax train' in cli_page and 'aiida-rlpath relax benchmark' in cli_page
    assert 'aiida-rlpath map launch' in cli_page and 'aiida-rlpath map report' in cli_page
