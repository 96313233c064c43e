"""Hygiene: phones in E.164 (``phonenumbers``, the store's region), names tidied, nothing changed silently."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_pipelines.core.hygiene import tidy, tidy_page
from crm_pipelines.core.model import Page, RemoteRecord
from crm_pipelines.core.normalize import clean_name, normalize_phone

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("written", ["(11) 98765-4321", "+55 (11) 9 8765 4321", "11987654321", "11 98765 4321", "11.98765.4321",
                                     "011 98765-4321", "+55-11-98765-4321", " +5511987654321\t"])
def test_one_number_written_many_ways_is_one_e164(written):
    assert normalize_phone(written, "BR") == "+5511987654321"


def test_landlines_foreign_numbers_and_the_store_region():
    assert normalize_phone("(21) 2345-6789", "BR") == "+552123456789"
    assert normalize_phone("+1 650-253-0000", "BR") == "+16502530000"
    assert normalize_phone("(650) 253-0000", "US") == "+16502530000"
    assert normalize_phone(None) is None and normalize_phone("  ") is None


@pytest.mark.parametrize("written", ["(11) 1234", "98765-4321", "abc", "+55 00 98765 4321", "(11) 98765-4321 ramal 2"])
def test_what_is_not_a_number_is_refused_with_the_value_as_written(written):
    with pytest.raises(ValueError, match="invalid phone"):
        normalize_phone(written, "BR")


def test_names_lose_control_characters_and_extra_spaces():
    # Zero-width characters are not control characters: they are kept (a ZWJ joins an emoji).
    assert clean_name("  Ana \t Maria\x07  da\u200bSilva ") == "Ana Maria da\u200bSilva"
    assert clean_name("\n \t") is None
    # A NUL is kept, so the record is rejected with the reason rather than changed silently.
    assert clean_name("\x00\n") == "\x00"


def test_a_record_with_an_unreadable_phone_is_rejected_with_the_raw_value_not_changed():
    page = Page([RemoteRecord("1", T0, {"email": "a@x.com", "first_name": " Ana  Maria ", "phone": "(11) 98765-4321"}),
                 RemoteRecord("2", T0, {"email": "b@x.com", "phone": "(11) 1234"})])
    tidied = tidy_page("contacts", page, "BR")
    [record] = tidied.records
    assert record.fields == {"email": "a@x.com", "first_name": "Ana Maria", "phone": "+5511987654321"}
    [error] = tidied.errors
    assert error.external_id == "2" and "'(11) 1234'" in error.message and error.message.startswith("phone:")
    kept = tidy("contacts", {"phone": "(11) 1234"}, "BR")
    assert kept.fields["phone"] == "(11) 1234" and kept.problem


PHONE_TEXT = st.one_of(
    st.text(alphabet="0123456789 ()-.+", max_size=24),
    st.builds(lambda area, number, style: style.format(a=area, n=number),
              st.sampled_from(["11", "21", "48", "85"]), st.integers(10**7, 10**8 - 1).map(str),
              st.sampled_from(["({a}) 9{n}", "+55 {a} 9{n}", "{a}9{n}", "0{a} 9{n}", "+55 ({a}) 9 {n}"])),
    st.text(max_size=20),
)


def test_a_number_of_zeros_only_is_refused_not_shortened():
    for written in ("+31 0 000000", "+31000000", "+55 00 0000-0000"):
        with pytest.raises(ValueError, match="not a valid number"):
            normalize_phone(written, "BR")


@settings(max_examples=400, deadline=None)
@given(PHONE_TEXT, st.sampled_from(["BR", "US", "PT"]))
def test_phone_normalization_is_idempotent(text, region):
    try:
        once = normalize_phone(text, region)
    except ValueError:
        return
    assert normalize_phone(once, region) == once
    if once is not None:
        assert once.startswith("+") and once[1:].isdigit()


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_name_cleaning_is_idempotent(text):
    once = clean_name(text)
    assert clean_name(once) == once
