"""Data-quality and reconciliation reports over the local database (no provider is called).

Per integration and entity: completeness of the fields the provider holds, invalid e-mails,
phones and CPF/CNPJ, duplicate candidates by identity key within the store, orphans (local
records whose provider record was deleted there), stale records (local changes not synced for
longer than a threshold) and the records on which the store's providers disagree. The counting
runs in the database; Python only confirms the few values SQL flags and shapes the small tables.
"""
