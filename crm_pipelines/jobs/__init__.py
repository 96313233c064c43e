"""Jobs: every sync, export, backfill and by-id sync as a row an application can read and cancel.

:mod:`.store` keeps the rows, :mod:`.progress` writes a running job's progress every few seconds,
:mod:`.launcher` starts and cancels the Dagster runs, :mod:`.api` serves them over HTTP.
"""
