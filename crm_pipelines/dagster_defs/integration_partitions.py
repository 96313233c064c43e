"""Keeps each provider's integration partitions equal to the ``integrations`` table.

``crm-pipelines integrations add`` also registers the partition at once when it can reach the
Dagster instance; this sensor covers everything else (rows written by the company's application,
integrations removed), so adding a store needs no deployment.
"""

import dagster as dg

from crm_pipelines.dagster_defs.integrations import DB_RESOURCE_KEY
from crm_pipelines.dagster_defs.partitions import integration_partitions, integration_partitions_name
from crm_pipelines.providers.registry import PROVIDERS


def partition_requests(instance: dg.DagsterInstance, wanted: dict[str, set[str]]) -> list:
    """Add and delete requests that make every provider's partitions the ``wanted`` keys."""
    requests = []
    for provider in PROVIDERS:
        have = set(instance.get_dynamic_partitions(integration_partitions_name(provider)))
        keys = wanted.get(provider, set())
        if keys - have:
            requests.append(integration_partitions(provider).build_add_request(sorted(keys - have)))
        if have - keys:
            requests.append(integration_partitions(provider).build_delete_request(sorted(have - keys)))
    return requests


@dg.sensor(
    name="crm_integration_partitions",
    minimum_interval_seconds=30,
    required_resource_keys={DB_RESOURCE_KEY},
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each new integration (and removes those of deleted ones) on every provider's assets.",
)
def integration_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    store = getattr(context.resources, DB_RESOURCE_KEY).store()
    wanted: dict[str, set[str]] = {}
    for integration in store.integrations.list():
        wanted.setdefault(integration.provider, set()).add(integration.key)
    requests = partition_requests(context.instance, wanted)
    if not requests:
        return dg.SensorResult(skip_reason="every integration has its partition")
    return dg.SensorResult(dynamic_partitions_requests=requests)
