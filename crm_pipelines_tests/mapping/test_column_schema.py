"""The import assets' column schema (``dagster/column_schema``) follows the mapping."""

from __future__ import annotations

import dagster as dg

from crm_pipelines.dagster_defs.imports import _schema_metadata, build_import_asset
from crm_pipelines.providers.registry import plugin
from crm_pipelines_tests.mapping.round_trip import mapping_text


def _columns(schema: dg.TableSchema) -> dict[str, dg.TableColumn]:
    return {c.name: c for c in schema.columns}


def test_asset_schema_lists_the_built_in_mapping_columns():
    asset = build_import_asset(plugin("salesforce"), "deals")
    schema = asset.specs_by_key[dg.AssetKey(["salesforce", "deals"])].metadata["dagster/column_schema"]
    columns = _columns(schema)
    assert list(columns) == ["name", "amount", "currency", "stage", "close_date"]  # no pipeline: Salesforce has none
    assert columns["close_date"].type == "date" and "CloseDate" in columns["close_date"].description


def test_an_integrations_mapping_shows_its_custom_columns(store, tmp_path):
    path = tmp_path / "hubspot.yaml"
    path.write_text(mapping_text("hubspot"))
    integration = store.integrations.default_for("hubspot")
    integration = store.integrations.update(integration, settings={"mapping_file": str(path)})
    columns = _columns(_schema_metadata(store.mapping_for(integration), "contacts")["dagster/column_schema"])
    assert {"custom.favorite_color", "custom.loyalty_tier", "email", "job_title"} <= set(columns)
    assert "lead_channel" not in str(list(columns))  # a constant has no local column
    assert "default(Unknown)" in columns["job_title"].description and "value_map(" in columns["lifecycle_stage"].description
