"""Rectification (Art. 16) and restriction (Art. 18) on the person's rows, set-based.

A rectified value is validated for what the field holds (an e-mail must be an e-mail, a phone
number becomes E.164, an IBAN must check out). Restriction marks rows through the column the
manifest names and, for tables without one, through lawful's own list of restricted persons.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pycountry
import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from stdnum import iban
from stdnum.exceptions import ValidationError as StdnumError

from lawful.engine import state
from lawful.engine.connect import Connections, EngineError
from lawful.engine.identities import Identities, IdentityError, normalise
from lawful.engine.plan import FieldPlan, Plan, TableKey, TablePlan
from lawful.engine.search import CHUNK, Searcher, table_clause
from lawful.manifest.model import Identity
from lawful.manifest.taxonomy import Taxonomy


class InvalidValue(ValueError):
    """A rectified value that cannot be what its field holds."""


@dataclass
class ModifyResult:
    action: str
    identities: dict[str, list[str]]
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows changed
    recipients: list[str] = field(default_factory=list)  # to tell (Art. 19)
    statements: int = 0

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _resolve(plan: Plan, target: str) -> tuple[TablePlan, FieldPlan]:
    """`table.field` or `system.table.field` to the declared table and field."""
    parts = target.split(".")
    if len(parts) == 2:
        matches = [tp for tp in plan.tables.values() if tp.key.table == parts[0]]
        if len(matches) > 1:
            raise InvalidValue(f"table {parts[0]!r} is in several systems: write system.table")
    elif len(parts) == 3:
        key = TableKey(parts[0], parts[1])
        matches = [plan.tables[key]] if key in plan.tables else []
    else:
        raise InvalidValue(f"{target!r}: write TABLE.FIELD=VALUE")
    if not matches:
        raise InvalidValue(f"no declared table {'.'.join(parts[:-1])!r}")
    tp = matches[0]
    fp = next((f for f in tp.fields if f.name == parts[-1]), None)
    if fp is None or fp.decl.category is None:
        declared = ", ".join(f.name for f in tp.personal_fields)
        raise InvalidValue(f"{tp.key.table}.{parts[-1]} is not a declared personal field "
                           f"(declared: {declared})")
    return tp, fp


def validate_value(plan: Plan, fp: FieldPlan, value: str) -> str:
    text = value.strip()
    if not text or len(text) > 1000:
        raise InvalidValue("the new value must be 1 to 1000 characters")
    tax = Taxonomy.of(plan.manifest)
    category = fp.decl.category or ""
    if fp.decl.identity is Identity.email or tax.is_within(category, "user.contact.email"):
        try:
            return validate_email(text, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidValue(f"{value!r} is not an e-mail address: {exc}") from None
    if fp.decl.identity is Identity.phone or tax.is_within(category,
                                                           "user.contact.phone_number"):
        try:
            return normalise(Identity.phone, text, plan.region)
        except IdentityError as exc:
            raise InvalidValue(str(exc)) from None
    if tax.is_within(category, "user.financial.bank_account"):
        try:
            return iban.validate(text)
        except StdnumError as exc:
            raise InvalidValue(f"{value!r} is not a valid IBAN: {exc}") from None
    if tax.is_within(category, "user.contact.address.country"):
        if pycountry.countries.get(alpha_2=text.upper()) is None:
            raise InvalidValue(f"{value!r} is not a two-letter country code")
        return text.upper()
    return text


def _update(conns: Connections, tp: TablePlan, pks: list[tuple[Any, ...]],
            values: dict[str, Any]) -> int:
    tc = table_clause(tp)
    statements = 0
    with conns.engine(tp.key.system).begin() as conn:
        for start in range(0, len(pks), CHUNK):
            chunk = pks[start:start + CHUNK]
            where = tc.c[tp.pk[0]].in_([pk[0] for pk in chunk]) if len(tp.pk) == 1 \
                else sa.tuple_(*(tc.c[c] for c in tp.pk)).in_(chunk)
            conns.execute(conn, tp, sa.update(tc).where(where).values(values))
            statements += 1
    return statements


def rectify(plan: Plan, identities: Identities, target: str, value: str) -> ModifyResult:
    tp, fp = _resolve(plan, target)
    new = validate_value(plan, fp, value)
    conns = Connections(plan)
    with conns.session():
        conns.ping_all()
        found = Searcher(plan, conns).find(identities)
        # Rows reached only through a shared cookie or IP address are not corrected.
        weak = found.weak.get(tp.key, set())
        pks = sorted((pk for pk in found.rows.get(tp.key, {}) if pk not in weak), key=str)
        result = ModifyResult("rectify", found.identities.as_dict(),
                              recipients=list(fp.context.recipients),
                              statements=found.statements)
        conns.close()
        if pks:
            result.statements += _update(conns, tp, pks, {fp.name: new})
        result.tables[str(tp.key)] = len(pks)
        _journal("rectify", found.identities, {"field": f"{tp.key}.{fp.name}",
                                               "rows": len(pks)})
    return result


def restrict(plan: Plan, identities: Identities, restricted: bool = True) -> ModifyResult:
    action = "restrict" if restricted else "unrestrict"
    conns = Connections(plan)
    with conns.session():
        conns.ping_all()
        found = Searcher(plan, conns).find(identities)
        result = ModifyResult(action, found.identities.as_dict(), statements=found.statements)
        conns.close()
        recipients: set[str] = set()
        for key, rows in found.rows.items():
            tp = plan.tables[key]
            recipients |= {r for f in tp.personal_fields for r in f.context.recipients}
            column = tp.decl.restricted_column
            if column and rows:
                result.statements += _update(conns, tp, list(rows), {column: restricted})
                result.tables[str(key)] = len(rows)
        # Tables without a restriction column: lawful's own list (keyed hashes) covers them.
        state.set_restricted(found.identities, restricted)
        result.recipients = sorted(recipients)
        _journal(action, found.identities, {"tables": result.tables})
    return result


def _journal(action: str, identities: Identities, summary: dict[str, Any]) -> None:
    run_id = uuid.uuid4().hex
    state.open_run(run_id, action, state.request_digest(action, identities), "-", {})
    state.close_run(run_id, summary)


__all__ = ["EngineError", "InvalidValue", "ModifyResult", "rectify", "restrict"]
