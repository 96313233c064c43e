"""Run one GestaoClick contacts export in its own process (the crash test kills it mid-way)."""

import sys

from crm_pipelines.providers.gestaoclick.api import GestaoClickClient
from crm_pipelines.providers.gestaoclick.writer import GestaoClickWriter
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.exporter import export_entity


def main(base_url: str, access: str, secret: str, db_url: str) -> None:
    store = LocalStore.open(db_url)
    with GestaoClickClient(access_token=access, secret_access_token=secret, base_url=base_url, per_second=1000) as client:
        result = export_entity(GestaoClickWriter(client), store, "gestaoclick", "contacts", stats=client.stats)
    print(result.summary(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
