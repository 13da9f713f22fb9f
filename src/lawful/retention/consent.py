"""Consent state for retention clocks ("until you unsubscribe", "1 year with your consent").

Until the consent ledger exists, the state is read from a column the manifest names on the
table (`consent: {purpose, withdrawn_at | given_at | given}`), inside the due condition, so
the database still does the work. A ledger plugs in as another `ConsentSource`: the same
three questions, answered with a condition on the table (for instance a join to a table the
ledger keeps in sync, or a list of identity hashes).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from lawful.engine.plan import TablePlan
from lawful.manifest.duration import Duration

if TYPE_CHECKING:
    from lawful.retention.rules import Sql


class ConsentSource(Protocol):
    def knows(self, tp: TablePlan, purpose: str) -> bool:
        """Whether this source holds the consent state of `purpose` for the table's rows."""

    def withdrawn(self, sql: Sql, tp: TablePlan, t: Any, purpose: str,
                  keep: Duration | None) -> Any:
        """Condition: consent was withdrawn (or never given) and `keep` has run since."""

    def given(self, sql: Sql, tp: TablePlan, t: Any, purpose: str) -> Any:
        """Condition: the consent stands today."""


class ColumnConsent:
    """Consent read from the table's own columns.

    - `withdrawn_at`: a date set on withdrawal. Due the day of the withdrawal, or when `keep`
      has run since. A withdrawal dated in the future is not due yet.
    - `given_at` (a date, null without consent) or `given` (a boolean): the date of a
      withdrawal is not known, so a row without consent is due at once (`keep` cannot be
      counted: say so in the notice, or record the date with withdrawn_at).
    """

    def knows(self, tp: TablePlan, purpose: str) -> bool:
        return any(c.purpose == purpose for c in tp.decl.consent)

    def _column(self, tp: TablePlan, purpose: str) -> Any:
        return next(c for c in tp.decl.consent if c.purpose == purpose)

    def withdrawn(self, sql: Sql, tp: TablePlan, t: Any, purpose: str,
                  keep: Duration | None) -> Any:
        decl = self._column(tp, purpose)
        if decl.withdrawn_at:
            found = sql.before(t, [decl.withdrawn_at], keep, None)
            return sa.false() if found is None else found[0]
        return sa.not_(self.given(sql, tp, t, purpose))

    def given(self, sql: Sql, tp: TablePlan, t: Any, purpose: str) -> Any:
        decl = self._column(tp, purpose)
        column = sql.column(t, decl.column)
        if decl.withdrawn_at:
            return sa.or_(column.is_(None), column >= sql.day(sql.today + dt.timedelta(days=1)))
        if decl.given_at:
            return column.is_not(None)
        return sa.and_(column.is_not(None), column == sa.true())
