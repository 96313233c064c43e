"""Salesforce: Contact (contacts), Account (companies) and Opportunity (deals).

``api`` holds the endpoints, limits, OAuth session and client; ``mapping`` the field mapping;
``reader`` the SOQL delta reads; ``writer`` the sObject Collections writes; ``resource`` the
Dagster resource; ``simulator`` (with ``simulator_soql``) the local HTTP simulator. Salesforce
sends no HTTP webhooks (Change Data Capture is gRPC/CometD): changes are polled.
"""

import os

from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.providers.salesforce.api import API_VERSION, LOGIN_URL, PROVIDER


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.salesforce.resource import SalesforceResource

    return SalesforceResource(
        client_id=dg.EnvVar("SALESFORCE_CLIENT_ID"),
        client_secret=dg.EnvVar("SALESFORCE_CLIENT_SECRET"),
        refresh_token=dg.EnvVar("SALESFORCE_REFRESH_TOKEN"),
        login_url=os.environ.get("SALESFORCE_LOGIN_URL", os.environ.get("SALESFORCE_BASE_URL", LOGIN_URL)),
        api_version=os.environ.get("SALESFORCE_API_VERSION", API_VERSION),
    )


def _simulator_env(sim) -> dict[str, str]:
    return {"SALESFORCE_LOGIN_URL": sim.base_url, "SALESFORCE_CLIENT_ID": sim.config.client_id,
            "SALESFORCE_CLIENT_SECRET": sim.config.client_secret, "SALESFORCE_REFRESH_TOKEN": sim.config.refresh_tokens[0]}


def _resource_class() -> type:
    from crm_pipelines.providers.salesforce.resource import SalesforceResource

    return SalesforceResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="Salesforce",
    entities=("contacts", "companies", "deals"),
    resource_key="salesforce",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=(
        "SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN",
        "SALESFORCE_LOGIN_URL", "SALESFORCE_BASE_URL", "SALESFORCE_API_VERSION",
    ),
    # Salesforce has no standard field for a contact's company name (only AccountId), a lifecycle
    # stage or a deal pipeline.
    fields={
        "contacts": ("email", "first_name", "last_name", "phone", "job_title", "document"),
        "deals": ("name", "amount", "currency", "stage", "close_date"),
    },
    resource_class=_resource_class,
    rate_limits={"max_share_of_daily_allocation": 1.0, "query_batch_size": 2000},
)
