"""Property-based tests (hypothesis): normalization and every provider's mapping never crash on arbitrary input."""

from __future__ import annotations

import ast
import importlib
import inspect
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_pipelines.core.model import FIELDS, RecordError, RemoteRecord
from crm_pipelines.core.normalize import clean_text, is_valid_email, normalize_document, normalize_domain, normalize_email
from crm_pipelines.providers.registry import PROVIDERS
from crm_pipelines_tests.faults.harness import _cnpj, _cpf

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.binary(), st.booleans()))
def test_normalizers_never_raise_except_on_invalid_documents(value):
    text = clean_text(value)
    assert text is None or (text == text.strip() and text)
    email = normalize_email(value)
    assert email is None or (email == email.lower() and is_valid_email(email))
    normalize_domain(value)
    try:
        document = normalize_document(value)
    except ValueError as exc:
        assert "CPF" in str(exc) or "CNPJ" in str(exc)
    else:
        assert document is None or (document.isdigit() and len(document) in (11, 14))


@SETTINGS
@given(st.text())
def test_clean_text_removes_terminal_control_characters(value):
    text = clean_text(value) or ""
    assert not re.search(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", text)


@SETTINGS
@given(st.integers(min_value=0, max_value=10**9), st.sampled_from(["{}", "{0}.{1}.{2}-{3}", " {0} {1} {2} {3} "]))
def test_cpf_round_trips_in_any_punctuation(n, layout):
    cpf = _cpf(n)
    if cpf == cpf[0] * 11:
        return
    written = layout.format(cpf[:3], cpf[3:6], cpf[6:9], cpf[9:]) if layout != "{}" else cpf
    assert normalize_document(written) == cpf
    wrong = cpf[:10] + str((int(cpf[10]) + 1) % 10)
    with pytest.raises(ValueError, match="CPF"):
        normalize_document(wrong)


@SETTINGS
@given(st.integers(min_value=0, max_value=10**8))
def test_cnpj_round_trips(n):
    cnpj = _cnpj(n)
    formatted = f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
    assert normalize_document(formatted) == cnpj
    wrong = cnpj[:13] + str((int(cnpj[13]) + 1) % 10)
    with pytest.raises(ValueError, match="CNPJ"):
        normalize_document(wrong)


# ----------------------------------------------------------------------------- mappings


def _vocabulary(module) -> list[str]:
    """Every identifier-like string literal in a mapping module: the field names it reads."""
    words = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Za-z_][\w.]{0,40}", node.value):
            words.update(node.value.split("."))
    return sorted(words)


NASTY = st.sampled_from([
    "", " ", "null", "não-é-email", "a@b", "x" * 5000, "\x00\x07\x1b[31m", "Robert'); DROP TABLE contacts;--",
    "<script>alert(1)</script>", "529.982.247-24", "11.111.111/1111-11", "2026-13-45T99:99:99Z", "NaN", "-1e309", "🚀🇧🇷",
])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30), NASTY)


def _objects(vocabulary: list[str]):
    keys = st.one_of(st.sampled_from(vocabulary), st.text(max_size=8))
    values = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=6)), max_leaves=20)
    return st.dictionaries(keys, values, max_size=15)


def _mapper(provider: str):
    module = importlib.import_module(f"crm_pipelines.providers.{provider}.mapping")
    if provider == "salesforce":
        mapping = module.Mapping()
        return module, lambda entity, obj: mapping.to_remote_record(entity, obj)
    if provider == "pipedrive":
        def run(entity, obj):
            names = module.CUSTOM_FIELD_NAMES[entity]
            keys = module.FieldKeys(entity, {canonical: f"k{n:039d}" for n, canonical in enumerate(names)} | {module.IDEMPOTENCY_FIELD: "k" * 40})
            return module.to_remote_record(entity, obj, keys)
        return module, run
    return module, module.to_remote_record


@pytest.mark.parametrize("provider", PROVIDERS)
def test_mapping_returns_a_record_or_an_error_for_any_json_like_object(provider):
    module, to_remote = _mapper(provider)
    vocabulary = _vocabulary(module) + ["id", "properties", "data", "updatedAt", "createdAt"]

    @SETTINGS
    @given(st.sampled_from(list(FIELDS)), _objects(vocabulary))
    def check(entity, obj):
        result = to_remote(entity, obj)
        assert isinstance(result, (RemoteRecord, RecordError)), result
        if isinstance(result, RemoteRecord):
            assert set(result.fields) <= set(FIELDS[entity])
            for value in result.fields.values():
                if isinstance(value, str):
                    assert not re.search(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", value), value  # NUL stays: the ledger gets it
        else:
            assert result.message

    check()
