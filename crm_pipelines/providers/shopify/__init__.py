"""Shopify Admin (GraphQL): customers (contacts), orders (deals), companies (B2B stores only).

``api`` holds the endpoint, cost limits and client; ``throttle`` the cost-bucket pacing;
``mapping`` the field mapping; ``reader`` the delta strategy; ``writer`` the aliased-mutation
writes; ``resource`` the Dagster resource; ``simulator`` (with ``sim_graphql``) the local simulator.
"""

import os

from crm_pipelines.providers.registry import ProviderPlugin
from crm_pipelines.providers.shopify.api import BASE_URL, PROVIDER


def default_base_url() -> str:
    """SHOPIFY_BASE_URL, else https://$SHOPIFY_SHOP.myshopify.com, else the placeholder (refused by the client)."""
    if os.environ.get("SHOPIFY_BASE_URL"):
        return os.environ["SHOPIFY_BASE_URL"]
    shop = os.environ.get("SHOPIFY_SHOP")
    return BASE_URL.format(shop=shop) if shop else BASE_URL


def _default_resource():
    import dagster as dg

    from crm_pipelines.providers.shopify.resource import ShopifyResource

    return ShopifyResource(
        access_token=dg.EnvVar("SHOPIFY_ACCESS_TOKEN"),
        base_url=default_base_url(),
        api_version=os.environ.get("SHOPIFY_API_VERSION", "2026-10"),
        plan=os.environ.get("SHOPIFY_PLAN", "standard"),
    )


def _simulator_env(sim) -> dict[str, str]:
    return {"SHOPIFY_BASE_URL": sim.base_url, "SHOPIFY_ACCESS_TOKEN": sim.config.tokens[0], "SHOPIFY_PLAN": sim.config.plan}


def _resource_class() -> type:
    from crm_pipelines.providers.shopify.resource import ShopifyResource

    return ShopifyResource


PLUGIN = ProviderPlugin(
    name=PROVIDER,
    title="Shopify",
    entities=("contacts", "companies", "deals"),
    resource_key="shopify",
    default_resource=_default_resource,
    simulator_env=_simulator_env,
    env_vars=("SHOPIFY_ACCESS_TOKEN", "SHOPIFY_BASE_URL", "SHOPIFY_SHOP", "SHOPIFY_API_VERSION", "SHOPIFY_PLAN", "SHOPIFY_WEBHOOK_SECRET"),
    webhook_object_types={"customers": "contacts", "orders": "deals", "companies": "companies"},
    # Shopify has no field for a customer's CPF/CNPJ, job title or lifecycle stage, nor for a
    # company's domain, document, phone, industry or address (without metafields).
    fields={
        "contacts": ("email", "first_name", "last_name", "phone", "company_name"),
        "companies": ("name",),
        "deals": ("name", "amount", "currency", "stage", "pipeline", "close_date"),
    },
    resource_class=_resource_class,
    rate_limits={},
)
