"""Names of the checks every import computes, shared by the Dagster layer and the jobs API."""

#: At most ``MAX_ERROR_RATE`` of the records an import read were rejected.
ERROR_RATE_CHECK = "error_rate_below_10pct"
MAX_ERROR_RATE = 0.10
#: Whether the integration's last sync of the entity went through (its error is the description).
SYNC_CHECK = "sync_succeeded"
#: The checks an import run computes with its assets (the provider count check runs on request only).
IMPORT_CHECKS = (ERROR_RATE_CHECK, SYNC_CHECK)
