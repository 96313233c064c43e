"""GestaoClick (Brazilian ERP): clientes PF as contacts, clientes PJ as companies, vendas as deals.

``api`` holds the endpoints, limits and client; ``mapping`` the field mapping; ``reader`` the
full-scan import (no modification filter exists); ``writer`` single-record writes; ``resource``
the Dagster resource; ``simulator`` the local HTTP simulator. GestaoClick sends no webhooks
(none are known): changes are found by polling.
"""

import os

from crm_pipelines.providers.gestaoclick.api import BASE_URL, PROVIDER
from crm_pipelines.providers.registry import ProviderPlugin


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.gestaoclick.resource import GestaoClickResource

    return GestaoClickResource(
        access_token=dg.EnvVar("GESTAOCLICK_ACCESS_TOKEN"),
        secret_access_token=dg.EnvVar("GESTAOCLICK_SECRET_ACCESS_TOKEN"),
        base_url=os.environ.get("GESTAOCLICK_BASE_URL", BASE_URL),
    )


def _simulator_env(sim) -> dict[str, str]:
    access, secret = sim.config.credentials[0]
    return {"GESTAOCLICK_BASE_URL": sim.base_url, "GESTAOCLICK_ACCESS_TOKEN": access, "GESTAOCLICK_SECRET_ACCESS_TOKEN": secret}


def _resource_class() -> type:
    from crm_pipelines.providers.gestaoclick.resource import GestaoClickResource

    return GestaoClickResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="GestaoClick",
    entities=("contacts", "companies", "deals"),
    resource_key="gestaoclick",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=("GESTAOCLICK_ACCESS_TOKEN", "GESTAOCLICK_SECRET_ACCESS_TOKEN", "GESTAOCLICK_BASE_URL"),
    webhook_object_types={},
    resource_class=_resource_class,
    person_name_in_one_field=True,
    rate_limits={"per_second": 3, "daily_limit": 30_000},
)
