"""Draft a `systems:` entry from a live database: tables, keys, references and guessed categories.

`reflect(url)` reads the schema with SQLAlchemy's inspector (no row is read) and returns a `System`
for the user to review and paste (`lawful.interop.fides.systems_yaml` prints it):

- every table, with its primary key (`[]` when it has none) and its foreign keys as references
  (a composite foreign key gives one reference per column pair);
- per column, a data category and identity guessed from its name (`guess_column`): `email` ->
  user.contact.email and identity email, `visitor_id` -> user.device.cookie_id and identity
  cookie_id, `postal_code` -> user.contact.address.postal_code... Other columns are left out:
  they hold no personal data as far as the name tells. Columns called `id` or `*_id` are keys, not
  personal data (save cookie/visitor/device ids and national ids), and boolean columns are flags
  (`email_verified`), not the data itself;
- guessed personal columns are erased with `null` when the column accepts NULL; a NOT NULL or
  primary key column gets no strategy, so that `lawful check` asks for one (hash, fixed, or
  delete_row on the table) instead of the engine failing on the first erasure.

The URL may hold `${VAR}` / `${VAR:-default}` (see `envurl.expand_url`); the returned system keeps
the URL as given, except that a password written in clear is replaced by `${<SYSTEM>_DB_PASSWORD}`
so that the draft never carries a secret. A database that is down, missing or refuses the login
raises ConnectionError with a one-line message that names the URL without its password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Inspector, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from lawful.interop.envurl import expand_url
from lawful.manifest.model import FieldDecl, Identity, Reference, Strategy, System, Table

CONNECT_TIMEOUT = 10  # seconds; a host that drops packets must not hang the command


@dataclass(frozen=True)
class Guess:
    category: str
    identity: Identity | None = None


def _rule(pattern: str, category: str, identity: Identity | None = None
          ) -> tuple[re.Pattern[str], Guess]:
    return re.compile(pattern), Guess(category, identity)


_T = r"(?:^|_)"  # a name token starts here
_E = r"(?:_|$)"  # ...and ends here

# Identifiers that are personal data although their names end in _id.
_ID_RULES = [
    _rule(rf"{_T}(?:visitor|cookie|device|anonymous)_id$", "user.device.cookie_id",
          Identity.cookie_id),
    _rule(rf"{_T}(?:ssn|bsn|personnummer|national_id(?:entification)?(?:_number|_no)?"
          rf"|social_security(?:_number)?){_E}",
          "user.government_id.national_identification_number", Identity.national_id),
]
_KEY = re.compile(r"(?:^|_)(?:id|uuid)$")
_RULES = [
    _rule(rf"{_T}ip(?:_address|_addr)?{_E}", "user.device.ip_address"),
    _rule(rf"{_T}mac(?:_address)?{_E}", "user.device"),
    _rule(rf"{_T}(?:e_?mail|mail){_E}", "user.contact.email", Identity.email),
    _rule(rf"{_T}(?:phone|mobile|tel|telephone|cellphone|msisdn){_E}",
          "user.contact.phone_number", Identity.phone),
    _rule(rf"{_T}(?:first_?name|given_?name|forename){_E}", "user.name.first"),
    _rule(rf"{_T}(?:last_?name|surname|family_?name){_E}", "user.name.last"),
    _rule(r"^(?:(?:full|display|contact|billing|shipping|customer|person|recipient)_?)?name$",
          "user.name"),
    _rule(rf"{_T}(?:birth|dob|birthday|birthdate){_E}", "user.demographic.date_of_birth"),
    _rule(rf"{_T}(?:iban|bank_account){_E}", "user.financial.bank_account"),
    _rule(rf"{_T}(?:card|card_number|credit_card|cc_number|ccn){_E}",
          "user.financial.credit_card"),
    _rule(rf"{_T}(?:password|passwd){_E}", "user.authorization.password"),
    _rule(rf"{_T}user_agent{_E}", "user.device"),
    _rule(rf"{_T}job_title{_E}", "user.job_title"),
    _rule(r"^(?:company|company_name|organi[sz]ation|organi[sz]ation_name|employer)$",
          "user.contact.organization"),
    _rule(rf"{_T}(?:street|address|address_?line_?\d*|address\d|house_number){_E}",
          "user.contact.address.street"),
    _rule(rf"{_T}(?:city|town){_E}", "user.contact.address.city"),
    _rule(rf"{_T}(?:zip|zip_?code|postal_code|post_?code){_E}",
          "user.contact.address.postal_code"),
    _rule(rf"{_T}country(?:_code)?{_E}", "user.contact.address.country"),
]
_BIRTH = "user.demographic.date_of_birth"


def _normalise(name: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    return re.sub(r"[^a-z0-9]+", "_", snake).strip("_")


def guess_column(name: str, type_: Any = None) -> Guess | None:
    """The data category (and identity) a column's name suggests, or None."""
    if isinstance(type_, sa.Boolean):
        return None
    key = _normalise(name)
    for pattern, guess in _ID_RULES:
        if pattern.search(key):
            return guess
    if _KEY.search(key):
        return None
    for pattern, guess in _RULES:
        if pattern.search(key):
            # A date or time is only personal here as a birth date (not `email_sent_at`).
            if isinstance(type_, sa.Date | sa.DateTime | sa.Time) and guess.category != _BIRTH:
                return None
            return guess
    return None


# --- the database ----------------------------------------------------------------------------

_PASSWORD = re.compile(r"^(?P<head>[A-Za-z0-9+.\-]+://[^:/@?#]*:)(?P<pw>[^@/?#]*)(?P<tail>@.*)$",
                       re.DOTALL)
_ENV_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$")


def _safe_url(url: str, system_id: str) -> str:
    match = _PASSWORD.match(url)
    if not match or not match.group("pw") or _ENV_ONLY.match(match.group("pw")):
        return url
    var = re.sub(r"[^A-Z0-9]+", "_", system_id.upper()).strip("_") or "DB"
    return f"{match.group('head')}${{{var}_DB_PASSWORD}}{match.group('tail')}"


def _reason(exc: BaseException, password: str | None) -> str:
    """The driver's message on one line, without the password."""
    source = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    text = " ".join(lines[:1]) or type(source).__name__
    text = re.sub(r"\s+", " ", text)
    if password:
        text = text.replace(password, "***")
    return text[:300]


def _connect_args(url: URL) -> dict[str, Any]:
    backend = url.get_backend_name()
    if backend == "postgresql" and "connect_timeout" not in url.query:
        return {"connect_timeout": CONNECT_TIMEOUT}
    if backend in {"mysql", "mariadb"} and "connect_timeout" not in url.query:
        return {"connect_timeout": CONNECT_TIMEOUT}
    return {}


def reflect(url: str, system_id: str = "db") -> System:
    """A draft system from the schema of the database at `url` (which may hold ${ENV} parts)."""
    real = expand_url(url)
    try:
        parsed = make_url(real)
    except ArgumentError:
        raise ValueError("cannot read the database URL: expected "
                         "dialect+driver://user@host:port/database, e.g. "
                         "postgresql+psycopg://app@db:5432/shop or sqlite:///shop.db") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if (database and database != ":memory:" and not database.startswith("file:")
                and not Path(database).exists()):
            # SQLite would create an empty file and report no tables at all.
            raise ConnectionError(f"cannot connect to {shown}: no SQLite database at "
                                  f"{database!r}")
    try:
        engine = sa.create_engine(parsed, connect_args=_connect_args(parsed))
    except (NoSuchModuleError, ImportError) as exc:
        raise ValueError(f"cannot use {parsed.drivername!r} URLs: {_reason(exc, None)}; "
                         "install the driver (psycopg for PostgreSQL, PyMySQL for MySQL)"
                         ) from None
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise ConnectionError(
                f"cannot connect to {shown}: {_reason(exc, parsed.password)}") from None
        with conn:
            try:
                inspector = sa.inspect(conn)
                names = sorted(inspector.get_table_names())
                tables = [_table(inspector, name) for name in names]
            except DBAPIError as exc:
                raise ConnectionError(f"cannot read the schema of {shown}: "
                                      f"{_reason(exc, parsed.password)}") from None
    finally:
        engine.dispose()
    return System(id=system_id, url=_safe_url(url, system_id), tables=tables)


def _table(inspector: Inspector, name: str) -> Table:
    primary_key = list(inspector.get_pk_constraint(name).get("constrained_columns") or [])
    fields: list[FieldDecl] = []
    for column in inspector.get_columns(name):
        guess = guess_column(column["name"], column["type"])
        if guess is None:
            continue
        nullable = column.get("nullable", True) and column["name"] not in primary_key
        fields.append(FieldDecl(name=column["name"], category=guess.category,
                                identity=guess.identity,
                                erase=Strategy.null if nullable else None))
    references = [
        Reference(field=column, to=f"{fk['referred_table']}.{target}")
        for fk in inspector.get_foreign_keys(name)
        for column, target in zip(fk["constrained_columns"], fk["referred_columns"],
                                  strict=False)
    ]
    return Table(name=name, primary_key=primary_key, fields=fields, references=references)
