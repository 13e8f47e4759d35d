"""The other half of the studies' smoke runs (see test_experiments.py)."""

import pytest
from helpers import SMOKE_FIRST_FILE, assert_smoke_report

from gdlab.cli import available_studies

SECOND_FILE = [name for name in available_studies() if name not in SMOKE_FIRST_FILE]


@pytest.mark.parametrize("name", SECOND_FILE)
def test_smoke_mode_writes_report(name, smoke_runs):
    assert_smoke_report(smoke_runs(name)[1])
