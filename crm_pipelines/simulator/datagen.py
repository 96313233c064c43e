"""Seeded, reproducible fake CRM data (people, organisations, deals) for the simulators.

Everything comes from one ``random.Random(seed)``, so the same seed and the same sequence of calls
give the same data. Names deliberately carry accents (Brazilian and others) to exercise Unicode
handling; emails are derived from the names folded to ASCII plus a suffix that is unique within one
generator, so emails never repeat in a data set. Brazilian CPF/CNPJ numbers have valid check
digits, are unique within a generator and come sometimes formatted, sometimes as bare digits.

Records returned by :meth:`FakeData.person`, :meth:`FakeData.organization` and
:meth:`FakeData.deal` use provider-neutral keys; each simulator maps them to its own field names.
Optional fields are sometimes missing (``None``): about 10% of people have no phone, 5% no last
name and 2% no email.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from operator import mul
from typing import TypeVar

T = TypeVar("T")

FIRST_NAMES = (
    "João", "José", "Antônio", "Francisco", "Luís", "Vinícius", "Sérgio", "Márcio", "Fábio", "Caio",
    "Conceição", "Lúcia", "Márcia", "Cecília", "Patrícia", "Letícia", "Beatriz", "Ana", "Maria", "Júlia",
    "Gabriel", "Lucas", "Rafael", "Mateus", "Thiago", "Carla", "Fernanda", "Juliana", "Camila", "Aline",
    "Zoë", "François", "Hélène", "Øyvind", "Łukasz", "Jürgen", "Søren", "Björn", "Agnès", "Noémie",
    "Nguyễn Văn", "Thảo", "Dũng", "Mária", "Zsófia", "İlker", "Çağla", "Íñigo", "Begoña", "Renée",
    "Ângela", "Inês", "Flávia", "Débora", "Raíssa", "Otávio", "Estêvão", "Simão", "Tomé", "Brás",
    "Emily", "Michael", "Sarah", "David", "Olivia", "Noah", "Aoife", "Siobhán", "Dmitri", "Yuki",
)

LAST_NAMES = (
    "Silva", "Santos", "Oliveira", "Souza", "Pereira", "Lima", "Carvalho", "Gomes", "Ribeiro", "Almeida",
    "Gonçalves", "Araújo", "Conceição", "Magalhães", "Assunção", "Brandão", "Falcão", "Simões", "Guimarães", "Romão",
    "Lopes", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques", "Machado",
    "Müller", "Schäfer", "Dubois", "Lefèvre", "Nguyễn", "Trần", "Łukaszewicz", "Wójcik", "Øster", "Sørensen",
    "Núñez", "Peña", "Muñoz", "García", "Ibáñez", "Kovács", "Dvořák", "Öztürk", "Jäger", "O'Brien",
    "Smith", "Johnson", "Brown", "Taylor", "Anderson", "Thomas", "Jackson", "White", "Harris", "Martin",
)

JOB_TITLES = (
    "Diretor Comercial", "Gerente de Compras", "Analista Financeiro", "CEO", "CTO", "Sócio-Proprietário",
    "Coordenadora de Marketing", "Engenheiro de Produção", "Assistente Administrativo", "Head of Sales",
    "Operations Manager", "Procurement Lead", "Contadora", "Gerente de TI", "Vendedor", None,
)

INDUSTRIES = (
    "COMPUTER_SOFTWARE", "RETAIL", "FOOD_BEVERAGES", "CONSTRUCTION", "LOGISTICS_AND_SUPPLY_CHAIN",
    "HOSPITAL_HEALTH_CARE", "FINANCIAL_SERVICES", "AUTOMOTIVE", "EDUCATION_MANAGEMENT", "TEXTILES",
    "AGRICULTURE", "TELECOMMUNICATIONS", "MARKETING_AND_ADVERTISING", "WHOLESALE", "PHARMACEUTICALS",
)

BRAZILIAN_CITIES = (
    ("São Paulo", "SP"), ("Rio de Janeiro", "RJ"), ("Belo Horizonte", "MG"), ("Brasília", "DF"),
    ("Salvador", "BA"), ("Fortaleza", "CE"), ("Curitiba", "PR"), ("Recife", "PE"), ("Porto Alegre", "RS"),
    ("Goiânia", "GO"), ("Belém", "PA"), ("São Luís", "MA"), ("Maceió", "AL"), ("Florianópolis", "SC"),
    ("Vitória", "ES"), ("João Pessoa", "PB"), ("Ribeirão Preto", "SP"), ("Uberlândia", "MG"),
    ("Niterói", "RJ"), ("Cuiabá", "MT"), ("Jundiaí", "SP"), ("Maringá", "PR"), ("Petrópolis", "RJ"),
)

FOREIGN_CITIES = (
    ("Lisboa", "Portugal"), ("Porto", "Portugal"), ("Buenos Aires", "Argentina"), ("Montevideo", "Uruguay"),
    ("Santiago", "Chile"), ("Ciudad de México", "Mexico"), ("München", "Germany"), ("Zürich", "Switzerland"),
    ("Kraków", "Poland"), ("Trondheim", "Norway"), ("Montréal", "Canada"), ("New York", "United States"),
)

COMPANY_CORES = (
    "Aurora", "Horizonte", "Itaú Sul", "Pão Dourado", "Açaí Norte", "Ipê", "Jequitibá", "Maré Alta",
    "Cerrado", "Sertão", "Atlântico", "Boa Vista", "Estrela", "Vale Verde", "Araucária", "Paraná",
    "Nordeste", "Gonçalves", "Conceição", "Müller", "Sørensen", "Nguyễn", "Łódź", "Café Brasil",
    "Trilha", "Oceano", "Ponte", "Farol", "Raiz", "Colmeia", "Bússola", "Sabiá", "Tucano", "Capivara",
)

COMPANY_KINDS = (
    "Tecnologia", "Logística", "Alimentos", "Comércio", "Construções", "Consultoria", "Distribuidora",
    "Indústria", "Serviços", "Software", "Transportes", "Agro", "Saúde", "Educação", "Imports",
)

COMPANY_SUFFIXES = ("Ltda", "S.A.", "ME", "EIRELI", "Ltda.", "& Filhos", "Group", "Inc.", "GmbH", "")

DEAL_TOPICS = (
    "Renovação anual", "Licença enterprise", "Expansão de contrato", "Projeto piloto", "Implantação",
    "Consultoria", "Upgrade de plano", "Pedido recorrente", "Treinamento", "Suporte premium",
    "New business", "Cross-sell", "Upsell",
)

FREE_MAIL_DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br", "bol.com.br", "terra.com.br")
DOMAIN_TLDS = (".com.br", ".com", ".net", ".com.br", ".io")

_SPECIAL_FOLDS = str.maketrans({
    "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "đ": "d", "Đ": "D", "ı": "i", "ð": "d", "þ": "th",
})
_NON_SLUG = re.compile(r"[^a-z0-9]+")

_CPF_MULTIPLIER = 387_420_489  # 3**18: coprime with 10**9, so index -> base is a bijection
_CNPJ_MULTIPLIER = 43_046_721  # 3**16: coprime with 10**8


def fold_ascii(text: str) -> str:
    """``"Conceição Łukaszewicz"`` -> ``"Conceicao Lukaszewicz"`` (accents removed)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL_FOLDS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).encode("ascii", "ignore").decode()


def slugify(text: str, sep: str = "") -> str:
    """Lower-case ASCII slug of ``text``; runs of other characters become ``sep``."""
    return _NON_SLUG.sub(sep, fold_ascii(text).lower()).strip(sep)


_CPF_WEIGHTS_1 = tuple(range(10, 1, -1))
_CPF_WEIGHTS_2 = tuple(range(11, 1, -1))
_CNPJ_WEIGHTS_2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_1 = _CNPJ_WEIGHTS_2[1:]


def _mod11_digit(digits: Sequence[int], weights: Sequence[int]) -> int:
    remainder = sum(map(mul, digits, weights)) % 11
    return 0 if remainder < 2 else 11 - remainder


def _check_digits(base: str, first_weights: Sequence[int], second_weights: Sequence[int]) -> str:
    digits = list(map(int, base))
    first = _mod11_digit(digits, first_weights)
    return f"{first}{_mod11_digit([*digits, first], second_weights)}"


def cpf_check_digits(base9: str) -> str:
    """The two check digits of a CPF whose first nine digits are ``base9``."""
    return _check_digits(base9, _CPF_WEIGHTS_1, _CPF_WEIGHTS_2)


def cnpj_check_digits(base12: str) -> str:
    """The two check digits of a CNPJ whose first twelve digits are ``base12``."""
    return _check_digits(base12, _CNPJ_WEIGHTS_1, _CNPJ_WEIGHTS_2)


def is_valid_cpf(value: str) -> bool:
    """Whether ``value`` (formatted or bare) is a CPF with correct check digits."""
    digits = re.sub(r"\D", "", value)
    return len(digits) == 11 and len(set(digits)) > 1 and cpf_check_digits(digits[:9]) == digits[9:]


def is_valid_cnpj(value: str) -> bool:
    """Whether ``value`` (formatted or bare) is a CNPJ with correct check digits."""
    digits = re.sub(r"\D", "", value)
    return len(digits) == 14 and len(set(digits)) > 1 and cnpj_check_digits(digits[:12]) == digits[12:]


def format_cpf(digits: str) -> str:
    """``12345678909`` -> ``123.456.789-09``."""
    return f"{digits[:3]}.{digits[3:6]}.{digits[6:9]}-{digits[9:]}"


def format_cnpj(digits: str) -> str:
    """``12345678000195`` -> ``12.345.678/0001-95``."""
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


class FakeData:
    """Seeded generator of fake CRM data; see the module docstring for the guarantees."""

    def __init__(self, seed: int | str = 0) -> None:
        """``seed`` may be an int or a string (string seeds are hashed deterministically)."""
        self.seed = seed
        self.rng = random.Random(seed)
        self._random = self.rng.random
        self._email_serial = 0
        self._cpf_serial = 0
        self._cnpj_serial = 0
        self._cpf_offset = self.rng.randrange(10**9)
        self._cnpj_offset = self.rng.randrange(10**8)
        self._domains: set[str] = set()
        self._company_names: dict[tuple[str, str, str], str] = {}  # shares repeated name strings
        # Pre-folded name slugs keep email generation cheap for millions of records.
        self._first = tuple((name, slugify(name, ".")) for name in FIRST_NAMES)
        self._last = tuple((name, slugify(name, "")) for name in LAST_NAMES)

    def pick(self, options: Sequence[T]) -> T:
        """A uniformly chosen element (cheaper than ``Random.choice`` for millions of calls)."""
        return options[int(self._random() * len(options))]

    def below(self, low: int, high: int) -> int:
        """A uniformly chosen integer in ``[low, high)``."""
        return low + int(self._random() * (high - low))

    def first_name(self) -> str:
        """A first name, often accented."""
        return self.pick(FIRST_NAMES)

    def last_name(self) -> str:
        """A last name, often accented."""
        return self.pick(LAST_NAMES)

    def phone(self) -> str:
        """A phone number in one of several real-world Brazilian/international notations."""
        area = self.pick((11, 21, 31, 41, 48, 51, 61, 71, 81, 85, 19, 27))
        style = self._random()
        if style < 0.4:
            return f"+55 {area} 9{self.below(1000, 10000)}-{self.below(0, 10000):04d}"
        if style < 0.7:
            return f"({area}) {self.below(2000, 6000)}-{self.below(0, 10000):04d}"
        if style < 0.9:
            return f"+55{area}9{self.below(10**7, 10**8)}"
        return f"+1 {self.below(201, 990)} 555 {self.below(0, 10000):04d}"

    def job_title(self) -> str | None:
        """A job title (sometimes ``None``)."""
        return self.pick(JOB_TITLES)

    def location(self) -> tuple[str, str | None, str]:
        """``(city, state or None, country)``; mostly Brazilian."""
        if self._random() < 0.85:
            city, state = self.pick(BRAZILIAN_CITIES)
            return city, state, "Brazil"
        city, country = self.pick(FOREIGN_CITIES)
        return city, None, country

    def cpf(self, formatted: bool | None = None) -> str:
        """A unique, check-digit-valid CPF; formatted ``123.456.789-09`` or bare (random if ``None``)."""
        while True:
            self._cpf_serial += 1
            base = f"{(self._cpf_serial * _CPF_MULTIPLIER + self._cpf_offset) % 10**9:09d}"
            if len(set(base)) > 1:
                break
        return self._shown(base + cpf_check_digits(base), formatted, format_cpf)

    def cnpj(self, formatted: bool | None = None) -> str:
        """A unique, check-digit-valid head-office CNPJ; formatted ``12.345.678/0001-95`` or bare."""
        while True:
            self._cnpj_serial += 1
            base = f"{(self._cnpj_serial * _CNPJ_MULTIPLIER + self._cnpj_offset) % 10**8:08d}0001"
            if len(set(base[:8])) > 1:
                break
        return self._shown(base + cnpj_check_digits(base), formatted, format_cnpj)

    def _shown(self, digits: str, formatted: bool | None, style: Callable[[str], str]) -> str:
        """``digits`` written with ``style`` or bare (``formatted``; 60% formatted when ``None``)."""
        return style(digits) if (self._random() < 0.6 if formatted is None else formatted) else digits

    def person(self) -> dict[str, str | None]:
        """A person: first_name, last_name, email, phone, mobile, job_title, company, city, state,
        country, document (CPF, ~70%). Some optional fields are ``None``."""
        first, first_slug = self.pick(self._first)
        roll = self._random()
        if roll < 0.05:
            last, last_slug = None, ""
        else:
            last, last_slug = self.pick(self._last)
        self._email_serial += 1
        if self._random() < 0.02:
            email = None
        else:
            local = f"{first_slug}.{last_slug}" if last_slug and self._random() < 0.7 else (first_slug[:1] + last_slug if last_slug else first_slug)
            email = f"{local}{self._email_serial}@{self.pick(FREE_MAIL_DOMAINS)}"
        city, state, country = self.location()
        return {
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": None if self._random() < 0.10 else self.phone(),
            "mobile": self.phone() if self._random() < 0.35 else None,
            "job_title": self.pick(JOB_TITLES),
            "company": self.company_name() if self._random() < 0.6 else None,
            "city": city,
            "state": state,
            "country": country,
            "document": self.cpf() if self._random() < 0.7 else None,
        }

    def company_name(self) -> str:
        """A company name such as ``"Gonçalves Logística Ltda"``."""
        parts = (self.pick(COMPANY_CORES), self.pick(COMPANY_KINDS), self.pick(COMPANY_SUFFIXES))
        name = self._company_names.get(parts)
        if name is None:
            name = " ".join(part for part in parts if part)
            self._company_names[parts] = name
        return name

    def domain(self, name: str) -> str:
        """A domain derived from ``name``, unique within this generator."""
        words = slugify(name, " ").split()
        stem = "".join(w for w in words if w not in {"ltda", "s", "a", "me", "eireli", "filhos", "group", "inc", "gmbh"})
        stem = stem[:24] or "empresa"
        tld = self.pick(DOMAIN_TLDS)
        candidate = f"{stem}{tld}"
        serial = 1
        while candidate in self._domains:
            serial += 1
            candidate = f"{stem}{serial}{tld}"
        self._domains.add(candidate)
        return candidate

    def industry(self) -> str:
        """An industry code (HubSpot-style upper-case enumeration values)."""
        return self.pick(INDUSTRIES)

    def organization(self) -> dict[str, str | None]:
        """An organisation: name, domain, phone, industry, city, state, country, document (CNPJ, ~80%)."""
        name = self.company_name()
        city, state, country = self.location()
        return {
            "name": name,
            "domain": self.domain(name) if self._random() < 0.95 else None,
            "phone": None if self._random() < 0.15 else self.phone(),
            "industry": self.industry() if self._random() < 0.9 else None,
            "city": city,
            "state": state,
            "country": country,
            "document": self.cnpj() if self._random() < 0.8 else None,
        }

    def deal_name(self, company: str | None = None) -> str:
        """``"Renovação anual - Aurora Tecnologia Ltda"`` style names."""
        topic = self.pick(DEAL_TOPICS)
        return f"{topic} - {company or self.company_name()}"

    def amount(self) -> str:
        """A money amount as a decimal string with two places (e.g. ``"12500.50"``)."""
        cents = int(self.rng.lognormvariate(9.5, 1.2) * 100)
        return f"{cents // 100}.{cents % 100:02d}"

    def deal(self) -> dict[str, str | None]:
        """A deal: name, amount (~90%), currency."""
        return {
            "name": self.deal_name(),
            "amount": self.amount() if self._random() < 0.9 else None,
            "currency": self.pick(("BRL", "BRL", "BRL", "USD", "EUR")),
        }


def only_digits(value: object) -> str:
    """The digits of a CPF, CNPJ or phone number, formatted or bare (``None`` -> ``""``)."""
    return re.sub(r"\D", "", str(value or ""))
