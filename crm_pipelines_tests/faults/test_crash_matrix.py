"""Crash matrix: imports, exports and syncs by id (what webhooks trigger) SIGKILLed at random points, then run again.

Quick subset: two kill points for a few provider/operation pairs. ``CRM_FAULTS_FULL=1``: 20 kill
points for every provider and operation.
"""

from __future__ import annotations

import pytest

from crm_pipelines.providers.registry import PROVIDERS
from crm_pipelines_tests.faults.crash import run_crash_matrix

OPS = ("import", "export", "ids")
QUICK = [("hubspot", "export"), ("salesforce", "import"), ("shopify", "ids"), ("gestaoclick", "export")]


def check(outcome, kills):
    assert outcome.failed_runs >= kills, f"only {outcome.failed_runs} kill points were exercised"
    assert outcome.checked > 0
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome.detail


@pytest.mark.parametrize("provider,op", QUICK)
def test_quick_crash_matrix(provider, op, sqlite_url):
    check(run_crash_matrix(provider, op, sqlite_url, kills=2), 2)


@pytest.mark.faults_full
@pytest.mark.parametrize("provider,op", [(p, o) for p in PROVIDERS for o in OPS if (p, o) not in QUICK])
def test_full_crash_matrix(provider, op, sqlite_url):
    check(run_crash_matrix(provider, op, sqlite_url, kills=20), 20)
