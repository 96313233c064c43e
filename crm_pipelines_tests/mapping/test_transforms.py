"""Each transform of the fixed set, both ways, through a compiled field."""

from __future__ import annotations

import pytest

from crm_pipelines.mapping import MappingError
from crm_pipelines.mapping.compiled import CompiledMapping
from crm_pipelines.mapping.spec import parse_text


def _field(transforms: str, local: str = "custom.value", region: str = "BR"):
    text = f"version: 1\nprovider: hubspot\nentities:\n  contacts:\n    - {{remote: x, local: {local}, transforms: {transforms}}}\n"
    return CompiledMapping(parse_text(text, "t.yaml"), region=region).fields("contacts")[0]


@pytest.mark.parametrize("transforms, provider_value, local_value, sent_back", [
    ("[trim, lower]", "  Azul ", "azul", "azul"),
    ("[phone_e164]", "(11) 98765-4321", "+5511987654321", "+5511987654321"),
    ("[document_digits]", "529.982.247-25", "52998224725", "52998224725"),
    ("[{value_map: {A: gold, B: silver}}]", "A", "gold", "A"),
    ("[{value_map: {A: gold}}]", "Z", "Z", "Z"),  # values outside the map pass unchanged
    ("[{date_format: '%d/%m/%Y'}]", "31/12/2026", "2026-12-31", "31/12/2026"),
    ("[{default: Unknown}]", "", "Unknown", "Unknown"),
])
def test_each_transform_reads_and_writes(transforms, provider_value, local_value, sent_back):
    field = _field(transforms)
    assert field.to_local(provider_value) == local_value
    assert field.to_remote(local_value) == sent_back


def test_a_default_fills_a_blank_sent_to_the_provider_and_the_phone_uses_the_region():
    assert _field("[{default: Unknown}]", local="last_name").to_remote(None) == "Unknown"
    assert _field("[phone_e164]", region="US").to_local("(415) 555-2671") == "+14155552671"


def test_a_value_that_cannot_be_read_names_the_transform_problem():
    with pytest.raises(ValueError, match="is not a date written %d/%m/%Y"):
        _field("[{date_format: '%d/%m/%Y'}]").to_local("2026-12-31")
    with pytest.raises(ValueError, match="invalid phone"):
        _field("[phone_e164]").to_local("(11) 1234")
    with pytest.raises(MappingError, match="date_format needs a strftime pattern"):
        _field("[{date_format: dd/mm}]")
