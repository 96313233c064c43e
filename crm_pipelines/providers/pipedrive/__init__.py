"""Pipedrive: persons (contacts), organizations (companies) and deals, API v2.

``api`` holds the endpoints, token costs, limits and client; ``mapping`` the field mapping;
``reader`` the delta strategy; ``writer`` the concurrent single-record writes; ``resource`` the
Dagster resource; ``simulator`` the local HTTP simulator.
"""

import os

from crm_pipelines.providers.pipedrive.api import BASE_URL, PROVIDER
from crm_pipelines.providers.registry import ProviderPlugin


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.pipedrive.resource import PipedriveResource

    return PipedriveResource(
        api_token=dg.EnvVar("PIPEDRIVE_API_TOKEN"),
        base_url=os.environ.get("PIPEDRIVE_BASE_URL", BASE_URL),
        burst_limit=int(os.environ.get("PIPEDRIVE_BURST_LIMIT", "20")),
    )


def _simulator_env(sim) -> dict[str, str]:
    return {"PIPEDRIVE_BASE_URL": sim.base_url, "PIPEDRIVE_API_TOKEN": sim.config.tokens[0]}


def _resource_class() -> type:
    from crm_pipelines.providers.pipedrive.resource import PipedriveResource

    return PipedriveResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="Pipedrive",
    entities=("contacts", "companies", "deals"),
    resource_key="pipedrive",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=("PIPEDRIVE_API_TOKEN", "PIPEDRIVE_BASE_URL", "PIPEDRIVE_BURST_LIMIT"),
    webhook_object_types={"person": "contacts", "organization": "companies", "deal": "deals"},
    resource_class=_resource_class,
    rate_limits={"burst_limit": 120, "search_burst": 10, "write_concurrency": 32},
)
