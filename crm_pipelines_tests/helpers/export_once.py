"""Run one HubSpot contacts export in its own process (the crash tests kill it mid-way)."""

import sys

from crm_pipelines.providers.hubspot.api import HubSpotClient
from crm_pipelines.providers.hubspot.writer import HubSpotWriter
from crm_pipelines.storage.leases import ExportLease, cli_owner
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity


def main(base_url: str, token: str, db_url: str) -> None:
    store = LocalStore.open(db_url)
    lease = ExportLease(store.engine, store.scope("hubspot"), "contacts", cli_owner())
    with HubSpotClient(access_token=token, base_url=base_url, burst_limit=1000) as client, lease:
        result = export_entity(HubSpotWriter(client), store, "hubspot", "contacts", stats=client.stats, lease=lease)
    print(result.summary(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
