"""HubSpot CRM: contacts, companies and deals.

``api`` holds the endpoints, limits and client; ``mapping`` the field mapping; ``reader`` the
delta strategy; ``resource`` the Dagster resource; ``simulator`` the local HTTP simulator.
"""

import os

from crm_pipelines.providers.hubspot.api import BASE_URL, PROVIDER
from crm_pipelines.providers.registry import ProviderPlugin


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.hubspot.resource import HubSpotResource

    return HubSpotResource(
        access_token=dg.EnvVar("HUBSPOT_ACCESS_TOKEN"),
        base_url=os.environ.get("HUBSPOT_BASE_URL", BASE_URL),
    )


def _simulator_env(sim) -> dict[str, str]:
    return {"HUBSPOT_BASE_URL": sim.base_url, "HUBSPOT_ACCESS_TOKEN": sim.config.tokens[0]}


def _resource_class() -> type:
    from crm_pipelines.providers.hubspot.resource import HubSpotResource

    return HubSpotResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="HubSpot",
    entities=("contacts", "companies", "deals"),
    resource_key="hubspot",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=("HUBSPOT_ACCESS_TOKEN", "HUBSPOT_BASE_URL"),
    webhook_object_types={"contact": "contacts", "company": "companies", "deal": "deals", "0-1": "contacts", "0-2": "companies", "0-3": "deals"},
    resource_class=_resource_class,
    rate_limits={"burst_limit": 190, "search_per_second": 5},
)
