"""Calendar arithmetic for retention clocks: months and years on the calendar, year ends."""

from __future__ import annotations

import calendar
import datetime as dt

from lawful.manifest.duration import Duration


def add(day: dt.date, duration: Duration) -> dt.date:
    """`day` plus `duration`; a month later from 31 January is the last day of February."""
    if duration.unit == "days":
        return day + dt.timedelta(days=duration.count)
    if duration.unit == "weeks":
        return day + dt.timedelta(weeks=duration.count)
    if duration.unit == "hours":
        return day + dt.timedelta(days=(duration.count + 23) // 24)
    months = duration.count * (12 if duration.unit == "years" else 1)
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))


def financial_year_end(day: dt.date, year_end: str = "12-31") -> dt.date:
    """The last day of the financial year that contains `day` (year end given as MM-DD)."""
    month, dom = (int(part) for part in year_end.split("-"))
    candidate = dt.date(day.year, month, min(dom, calendar.monthrange(day.year, month)[1]))
    if candidate >= day:
        return candidate
    nxt = day.year + 1
    return dt.date(nxt, month, min(dom, calendar.monthrange(nxt, month)[1]))


def as_date(value: object) -> dt.date | None:
    """A column value as a date; None for NULL or anything that is not a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None
