"""Bling API v3 (Brazilian ERP): contatos (tipo F -> contacts, tipo J -> companies) and pedidos de venda (deals).

``api`` holds the endpoints, limits, OAuth refresh and client; ``mapping`` the field mapping;
``reader`` the delta strategy; ``writer`` single-record writes; ``resource`` the Dagster resource;
``simulator`` the local HTTP simulator.
"""

import os

from crm_pipelines.providers.bling.api import BASE_URL, PROVIDER
from crm_pipelines.providers.bling.mapping import HELD_FIELDS
from crm_pipelines.providers.registry import ProviderPlugin


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.bling.resource import BlingResource

    return BlingResource(
        client_id=dg.EnvVar("BLING_CLIENT_ID"),
        client_secret=dg.EnvVar("BLING_CLIENT_SECRET"),
        refresh_token=dg.EnvVar("BLING_REFRESH_TOKEN"),
        access_token=os.environ.get("BLING_ACCESS_TOKEN", "") and dg.EnvVar("BLING_ACCESS_TOKEN"),
        base_url=os.environ.get("BLING_BASE_URL", BASE_URL),
    )


def _simulator_env(sim) -> dict[str, str]:
    return {"BLING_BASE_URL": sim.base_url + "/Api/v3", "BLING_CLIENT_ID": sim.config.client_id,
            "BLING_CLIENT_SECRET": sim.config.client_secret, "BLING_REFRESH_TOKEN": sim.config.refresh_token}


def _resource_class() -> type:
    from crm_pipelines.providers.bling.resource import BlingResource

    return BlingResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="Bling",
    entities=("contacts", "companies", "deals"),
    resource_key="bling",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=("BLING_CLIENT_ID", "BLING_CLIENT_SECRET", "BLING_REFRESH_TOKEN", "BLING_ACCESS_TOKEN", "BLING_BASE_URL"),
    # A "contact" event may name a person or a company: both entities read the id, and the one
    # whose tipo does not match sees it as not (or no longer) its record.
    webhook_object_types={"contact": ("contacts", "companies"), "order": "deals"},
    fields=HELD_FIELDS,
    resource_class=_resource_class,
    person_name_in_one_field=True,
    rate_limits={"per_second": 3},
)
