"""Fault matrix: every provider's simulator misbehaves during imports and exports; nothing is lost or duplicated.

The quick subset (default) runs one import and one export fault per provider, rotating so every
fault kind is covered; ``CRM_FAULTS_FULL=1`` runs every fault against every provider and
direction (``python -m crm_pipelines_tests.fault_matrix`` prints the table).
"""

from __future__ import annotations

import pytest

from crm_pipelines.providers.registry import PROVIDERS
from crm_pipelines_tests.faults.harness import SCENARIOS, run_export_scenario, run_import_scenario

FAULT_NAMES = list(SCENARIOS)


def _quick_cases():
    cases = []
    for index, provider in enumerate(PROVIDERS):
        for direction, shift in (("import", 0), ("export", 3)):
            names = [n for n in FAULT_NAMES if SCENARIOS[n].applies(provider)]
            cases.append((provider, names[(index + shift) % len(names)], direction))
    return cases


def _full_cases():
    quick = set(_quick_cases())
    return [pytest.param(p, f, d, marks=pytest.mark.faults_full) for p in PROVIDERS for f in FAULT_NAMES if SCENARIOS[f].applies(p)
            for d in ("import", "export") if (p, f, d) not in quick]


def check(outcome):
    assert outcome.completed, f"never completed in {outcome.runs} runs: {outcome.failure_messages}"
    assert outcome.checked > 0
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome.detail
    assert "message does not name" not in outcome.detail and "not clear" not in outcome.detail, outcome.detail


@pytest.mark.parametrize("provider,fault,direction", _quick_cases())
def test_quick_fault_matrix(provider, fault, direction, sqlite_url):
    if direction == "import":
        check(run_import_scenario(provider, SCENARIOS[fault], sqlite_url, sizes=(4, 2, 3)))
    else:
        check(run_export_scenario(provider, SCENARIOS[fault], sqlite_url, records=3))


@pytest.mark.parametrize("provider,fault,direction", _full_cases())
def test_full_fault_matrix(provider, fault, direction, sqlite_url):
    run = run_import_scenario if direction == "import" else run_export_scenario
    check(run(provider, SCENARIOS[fault], sqlite_url))


def test_a_lost_record_is_detected(sqlite_url, monkeypatch):
    """The reconciliation can fail: an import that drops a record is reported as lost."""
    from crm_pipelines.storage import store as store_module

    original = store_module.LocalStore.apply_remote
    monkeypatch.setattr(store_module.LocalStore, "apply_remote", lambda self, p, e, records: original(self, p, e, records[1:]))
    outcome = run_import_scenario("hubspot", SCENARIOS["5xx at 10%"], sqlite_url)
    assert outcome.lost > 0


def test_a_duplicate_create_is_detected(sqlite_url, monkeypatch):
    """The reconciliation can fail: a writer that creates every record twice is reported as duplicating."""
    from crm_pipelines.providers.pipedrive.writer import PipedriveWriter

    original = PipedriveWriter.create

    def twice(self, entity, records):
        original(self, entity, records)
        return original(self, entity, records)

    monkeypatch.setattr(PipedriveWriter, "create", twice)
    outcome = run_export_scenario("pipedrive", SCENARIOS["5xx at 10%"], sqlite_url)
    assert outcome.duplicated > 0
