"""Identity normalization: e-mail, domain, CPF/CNPJ."""

import pytest

from crm_pipelines.core.normalize import clean_text, normalize_document, normalize_domain, normalize_email


def test_email_is_trimmed_and_lowercased():
    assert normalize_email("  Joao.Silva@Example.COM ") == "joao.silva@example.com"
    assert normalize_email("not-an-email") is None
    assert normalize_email("") is None


def test_domain_loses_scheme_www_and_path():
    assert normalize_domain("https://www.Acme.com.br/contato?x=1") == "acme.com.br"
    assert normalize_domain("acme.com") == "acme.com"


@pytest.mark.parametrize("raw,digits", [("529.982.247-25", "52998224725"), ("52998224725", "52998224725"), ("11.222.333/0001-81", "11222333000181")])
def test_valid_documents_are_reduced_to_digits(raw, digits):
    assert normalize_document(raw) == digits


@pytest.mark.parametrize("raw", ["529.982.247-24", "111.111.111-11", "11.222.333/0001-80", "1234"])
def test_invalid_documents_raise_with_reason(raw):
    with pytest.raises(ValueError, match="invalid"):
        normalize_document(raw)


def test_text_keeps_accents_and_drops_terminal_control_characters():
    assert clean_text("  Conceição Gonçalves\x07\x1b ") == "Conceição Gonçalves"
    # kept as sent: line breaks, emoji sequences (zero-width joiners), characters newer than Python's tables, NUL (rejected later)
    for text in ("Rua A\nApto 2", "Família 👩\u200d👩\u200d👧", "Nova 🫨\U0001FAE9", "Ana\x00Maria"):
        assert clean_text(text) == text
    assert clean_text("   ") is None
