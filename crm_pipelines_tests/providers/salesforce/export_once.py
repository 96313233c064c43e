"""Run one Salesforce contacts export in its own process (the crash test kills it mid-way)."""

import sys

from crm_pipelines.providers.salesforce.api import SalesforceClient
from crm_pipelines.providers.salesforce.simulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_REFRESH_TOKEN
from crm_pipelines.providers.salesforce.writer import SalesforceWriter
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity


def main(login_url: str, db_url: str) -> None:
    store = LocalStore.open(db_url)
    with SalesforceClient(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, refresh_token=DEFAULT_REFRESH_TOKEN, login_url=login_url) as client:
        result = export_entity(SalesforceWriter(client), store, "salesforce", "contacts", stats=client.stats, batch_size=100)
    print(result.summary(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
