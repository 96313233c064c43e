"""Stores (tenants, lojas) and their integrations: one store's account at one provider.

``model`` holds the values, ``registry`` the tables and how an integration's client is opened,
``secrets`` how credentials are kept (references or encrypted, never plain text).
"""

from crm_pipelines.integrations.model import DEFAULT_INTEGRATION_KEY, DEFAULT_STORE_KEY, Integration, IntegrationSettings, Store
from crm_pipelines.integrations.registry import IntegrationRegistry

__all__ = ["DEFAULT_INTEGRATION_KEY", "DEFAULT_STORE_KEY", "Integration", "IntegrationRegistry", "IntegrationSettings", "Store"]
