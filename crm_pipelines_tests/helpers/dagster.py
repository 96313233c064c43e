"""Dagster test helpers: an instance knowing the integration partitions, materialization figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from crm_pipelines.dagster_defs.partitions import integration_partitions_name
from crm_pipelines.providers.registry import PROVIDERS

DEFAULT = "default"


@contextmanager
def instance_with_integrations(*keys: str) -> Iterator[dg.DagsterInstance]:
    """A test instance whose providers' assets have a partition for each integration key (``default`` always)."""
    with dg.instance_for_test() as instance:
        for provider in PROVIDERS:
            instance.add_dynamic_partitions(integration_partitions_name(provider), [DEFAULT, *keys])
        yield instance


def metadata_by_asset(result) -> dict[str, dict]:
    """The last materialization's metadata of each asset of a run, as plain values."""
    out = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        out[m.asset_key.to_user_string()] = {k: v.value for k, v in m.metadata.items()}
    return out
