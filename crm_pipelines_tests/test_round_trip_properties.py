"""Property: on every provider, exporting local records and importing them back changes nothing.

Hypothesis writes contacts with compound names, accents, scripts beyond Latin, emoji joined by
zero-width joiners, line breaks in job titles, and (on Salesforce) deals with amounts and close
dates; each example is exported to the provider's simulator and imported back, and the local rows
must be exactly as written, with no record created, updated or rejected. One simulator and one
database per provider serve the whole module.
"""

from __future__ import annotations

import itertools
import unicodedata
from datetime import date, datetime, time, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from crm_pipelines.cli.demo import start_simulator
from crm_pipelines.providers.bling.api import BlingAuth, BlingClient
from crm_pipelines.providers.gestaoclick.api import GestaoClickClient
from crm_pipelines.providers.registry import PROVIDERS
from crm_pipelines.storage.schema import ENTITY_TABLES
from crm_pipelines.storage.store import LocalStore
from crm_pipelines.sync.runner import export_now, import_now
from crm_pipelines_tests.faults.harness import provider_env

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
FAST = 100_000
#: Each provider's longest first and last names (Salesforce: FirstName 40, LastName 80).
NAME_LIMITS = {"salesforce": (40, 80)}
#: Contact fields each provider holds (the others stay local and are not compared).
CONTACT_FIELDS = {
    "shopify": ("email", "first_name", "last_name", "company_name"),
    "salesforce": ("email", "first_name", "last_name", "job_title"),
}
DEFAULT_CONTACT_FIELDS = ("email", "first_name", "last_name", "job_title", "company_name")

WORDS = ["João", "Pedro", "Conceição", "Zoë", "Ünal", "Família", "Açaí", "Ñandú", "Straße", "Łódź", "d'Ávila", "O'Brien", "김민준",
         "محمد", "Øresund", "Nguyễn", "Ἀθηνᾶ", "👩\u200d👩\u200d👧", "🏳️\u200d🌈", "🫨", "🧑🏽\u200d💻", "Souza-Lima"]
word = st.one_of(st.sampled_from(WORDS), st.text(st.characters(whitelist_categories=("Lu", "Ll", "Lo")), min_size=1, max_size=8)).map(
    lambda w: unicodedata.normalize("NFC", w))
title_line = st.lists(word, min_size=1, max_size=3).map(" ".join)


def _name(max_words: int, limit: int) -> st.SearchStrategy[str]:
    return st.lists(word, min_size=1, max_size=max_words).map(" ".join).filter(lambda n: len(n) <= limit)


def contacts_of(provider: str) -> st.SearchStrategy[dict]:
    first_limit, last_limit = NAME_LIMITS.get(provider, (120, 120))
    return st.fixed_dictionaries({
        "first_name": _name(2, first_limit),
        "last_name": _name(3, last_limit),
        "job_title": st.lists(title_line, min_size=1, max_size=3).map("\n".join),
        "company_name": _name(3, 120),
    })


deal = st.fixed_dictionaries({
    "name": _name(3, 120),
    "amount": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2, allow_nan=False, allow_infinity=False),
    "close_date": st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)).map(lambda d: datetime.combine(d, time(), timezone.utc)),
})

_serial = itertools.count()


class Round:
    """One provider's simulator and database for the module; each example adds rows and checks them."""

    def __init__(self, provider: str, directory) -> None:
        self.provider = provider
        extra = ["--per-second", str(FAST)] if provider in ("bling", "gestaoclick") else None
        self.sim = start_simulator(provider, sizes=(0, 0, 0), seed=3, extra=extra)
        self.store = LocalStore.open(f"sqlite:///{directory / (provider + '.db')}")

    def check(self, entity: str, rows: list[dict], compared: tuple[str, ...]) -> None:
        now = datetime.now(timezone.utc)
        table = ENTITY_TABLES[entity]
        with self.store.engine.begin() as conn:
            ids = [conn.execute(insert(table).values(row | {"created_at": now, "updated_at": now})).inserted_primary_key[0] for row in rows]
        columns = [table.c.id, *(table.c[name] for name in compared)]
        with self.store.engine.connect() as conn:
            before = conn.execute(select(*columns).where(table.c.id.in_(ids)).order_by(table.c.id)).all()
        with provider_env(self.provider, self.sim):
            exported = export_now(self.provider, entity, self.store, shared=False)
            imported = import_now(self.provider, entity, self.store, shared=False)
        assert (exported.created, exported.rejected) == (len(rows), 0), exported.metadata()
        assert (imported.outcome.created, imported.outcome.updated, imported.failed) == (0, 0, 0), imported.summary()
        with self.store.engine.connect() as conn:
            after = conn.execute(select(*columns).where(table.c.id.in_(ids)).order_by(table.c.id)).all()
        assert after == before

    def close(self) -> None:
        self.store.dispose()
        self.sim.stop()


@pytest.fixture(scope="module")
def rounds(tmp_path_factory):
    """Simulators started once for the module, with no real-time pacing (Bling and GestaoClick allow 3 requests a second)."""
    patch = pytest.MonkeyPatch()
    for client_class in (BlingClient, GestaoClickClient):
        original = client_class.__init__
        patch.setattr(client_class, "__init__", lambda self, *a, _original=original, **kw: _original(self, *a, **{**kw, "per_second": FAST}))
    directory = tmp_path_factory.mktemp("round_trip")
    started: dict[str, Round] = {}

    def get(provider: str) -> Round:
        if provider not in started:
            started[provider] = Round(provider, directory)
        return started[provider]

    yield get
    for found in started.values():
        found.close()
    patch.undo()
    BlingAuth._REGISTRY.clear()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_contacts_export_then_import_is_the_identity(provider, rounds):
    round_ = rounds(provider)
    compared = CONTACT_FIELDS.get(provider, DEFAULT_CONTACT_FIELDS)

    @SETTINGS
    @given(st.lists(contacts_of(provider), min_size=1, max_size=3))
    def example(rows):
        rows = [{name: row[name] for name in compared if name in row} | {"email": f"ida.volta.{next(_serial)}@exemplo.com.br"} for row in rows]
        round_.check("contacts", rows, compared)

    example()


def test_salesforce_deals_export_then_import_is_the_identity(rounds):
    round_ = rounds("salesforce")

    @SETTINGS
    @given(st.lists(deal, min_size=1, max_size=3))
    def example(rows):
        round_.check("deals", [row | {"stage": "Prospecting"} for row in rows], ("name", "amount", "close_date", "stage"))

    example()
