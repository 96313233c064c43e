"""Local contacts with phones written the messy ways people write them, and their E.164 forms."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import insert

from crm_pipelines.storage.schema import contacts

AREAS = ("11", "21", "31", "41", "48", "51", "61", "71", "81", "85", "19", "27")
#: Ways to write an area code ``a`` and a number split in two halves ``h1``/``h2``.
STYLES = ("({a}) {h1}-{h2}", "+55 ({a}) {h1} {h2}", "{a}{h1}{h2}", "{a} {h1} {h2}", "{a}.{h1}.{h2}", "{a}-{h1}-{h2}",
          "0{a} {h1}-{h2}", "+55{a}{h1}{h2}", " +55 {a} {h1}-{h2} ", "55 {a} {h1} {h2}")
#: Values no numbering plan reads as a Brazilian number (kept as written, rejected with their value).
INVALID = ("(11) 1234", "98765-4321", "{a} 12", "ramal 12", "+55 00 98765 4321", "(11) 0000-000")


@dataclass(frozen=True)
class MessyContacts:
    """The contacts inserted: local id -> the E.164 phone each must leave as (None: not a number)."""

    e164: dict[int, str | None]

    @property
    def valid(self) -> set[int]:
        return {local_id for local_id, phone in self.e164.items() if phone}

    @property
    def invalid(self) -> set[int]:
        return set(self.e164) - self.valid


def messy_phone(rng: random.Random) -> tuple[str, str | None]:
    """A phone as someone typed it, and its E.164 form (None when it is not a number)."""
    area = rng.choice(AREAS)
    if rng.random() < 0.05:
        return rng.choice(INVALID).format(a=area), None
    if rng.random() < 0.6:
        number = "9" + f"{rng.randrange(10**7):08d}"
        h1, h2 = (number[:5], number[5:]) if rng.random() < 0.5 else (f"{number[0]} {number[1:5]}", number[5:])
    else:
        number = str(rng.randint(2, 5)) + f"{rng.randrange(10**7):07d}"
        h1, h2 = number[:4], number[4:]
    return rng.choice(STYLES).format(a=area, h1=h1, h2=h2), f"+55{area}{number}"


def add_messy_contacts(store, n: int, *, seed: int = 16) -> MessyContacts:
    """``n`` local contacts with messy phones and names (spaces, tabs, a control character)."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    rows, e164 = [], []
    for i in range(n):
        phone, expected = messy_phone(rng)
        rows.append({"email": f"cliente{i}@exemplo.com.br", "first_name": f"  {rng.choice(('Ana', 'João', 'Conceição', 'Zé'))}\x07 ",
                     "last_name": f"Souza \t Lima{i}", "phone": phone, "created_at": now, "updated_at": now})
        e164.append(expected)
    with store.engine.begin() as conn:
        ids = [conn.execute(insert(contacts).values(**row).returning(contacts.c.id)).scalar_one() for row in rows]
    return MessyContacts(dict(zip(ids, e164)))
