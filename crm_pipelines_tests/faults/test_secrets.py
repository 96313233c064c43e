"""No secret in the event log, run records, exception messages or logs of real Dagster runs, for every provider."""

from __future__ import annotations

import logging
import warnings

import dagster as dg
import pytest

from crm_pipelines.dagster_defs.schedules import export_job_name, import_job_name
from crm_pipelines.providers.registry import PROVIDERS, plugin
from crm_pipelines.storage.store import LocalStore
from crm_pipelines_tests.faults.harness import FaultRun, add_local, start
from crm_pipelines_tests.helpers.dagster import DEFAULT, instance_with_integrations

SECRET_WORDS = ("TOKEN", "SECRET", "CLIENT_ID")


def secrets_of(provider: str, sim, env: dict[str, str]) -> set[str]:
    found = {v for k, v in env.items() if any(w in k for w in SECRET_WORDS) and len(v) >= 8}
    # tokens the provider issued during the run (Bling's OAuth pairs, Salesforce sessions)
    for attribute in ("_access", "_sessions", "_refresh"):
        value = getattr(sim, attribute, None)
        if isinstance(value, dict):
            found |= {t for t in value if isinstance(t, str) and len(t) >= 8}
    if hasattr(sim, "current_refresh_tokens"):
        found |= set(sim.current_refresh_tokens)
    return found


def _text_of_run(instance, result) -> str:
    parts = []
    run = instance.get_run_by_id(result.run_id)
    parts += [repr(run.tags), repr(run.run_config)]
    for record in instance.all_logs(result.run_id):
        parts.append(repr(record))
        if record.dagster_event is not None:
            parts.append(repr(record.dagster_event.event_specific_data))
    for event in result.get_asset_materialization_events():
        parts.append(repr(event.event_specific_data.materialization.metadata))
    return "\n".join(parts)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_secret_leaks_from_dagster_runs(provider, sqlite_url, monkeypatch, caplog, capfd):
    from crm_pipelines.definitions import build_definitions

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    caplog.set_level(logging.DEBUG)
    sim = start(provider, (5, 2, 2))
    try:
        env = plugin(provider).simulator_env(sim)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CRM_DATABASE_URL", sqlite_url)
        store = LocalStore.open(sqlite_url)
        add_local(store, "contacts", 3, tag="segredo")
        store.dispose()
        defs = build_definitions()
        texts, outcomes = [], []
        with instance_with_integrations() as instance:
            first = DEFAULT
            result = defs.resolve_job_def(import_job_name(provider)).execute_in_process(instance=instance, partition_key=first, raise_on_error=False)
            outcomes.append(result.success)
            texts.append(_text_of_run(instance, result))
            result = defs.resolve_job_def(export_job_name(provider)).execute_in_process(instance=instance, partition_key=first, raise_on_error=False)
            outcomes.append(result.success)
            texts.append(_text_of_run(instance, result))
            # and a run that fails on authentication: its error messages must not quote the credentials
            faults = FaultRun(sim)
            faults.reject_status = 401
            result = defs.resolve_job_def(import_job_name(provider)).execute_in_process(instance=instance, partition_key=first, raise_on_error=False)
            assert not result.success
            failure_text = _text_of_run(instance, result)
            texts.append(failure_text)
            try:
                defs.resolve_job_def(import_job_name(provider)).execute_in_process(instance=instance, partition_key=first)
            except Exception as exc:  # noqa: BLE001
                texts.append(f"{exc!r} {exc}")
        assert outcomes == [True, True], f"runs of {provider} failed"
        assert "401" in failure_text  # the failure is reported (and scanned)
        captured = capfd.readouterr()
        texts += [caplog.text, captured.out, captured.err]
        secrets = secrets_of(provider, sim, env)
        assert secrets
        everything = "\n".join(texts)
        leaked = sorted(s for s in secrets if s in everything)
        assert not leaked, f"{provider} secrets leaked: {leaked}"
    finally:
        sim.stop()
