"""One sync in its own process, for the crash matrix (which SIGKILLs it): import, export or sync by id.

``python -m crm_pipelines_tests.faults.crash_once <provider> <import|export|ids> <db_url> <entity> [ids...]``;
the provider's resource reads its settings from the environment (``plugin.simulator_env``).
"""

import logging
import sys

from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now, sync_ids_now


def main(provider: str, op: str, db_url: str, entity: str, *ids: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    store = LocalStore.open(db_url)
    if op == "import":
        print(import_now(provider, entity, store, full=True, shared=False).__dict__.get("fetched", "done"), flush=True)
    elif op == "export":
        print(export_now(provider, entity, store, batch_size=5, shared=False).summary(), flush=True)
    else:
        print(sync_ids_now(provider, entity, store, list(ids), shared=False), flush=True)
    store.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
