"""When a retention clock ends, and its inverse: the latest event day that is due today.

A row is kept through the last day of its period and is due the day after: a visit on
1 March 2025 kept "1 year after the last visit" is kept through 1 March 2026 and deleted from
2 March 2026 (the engine's legal holds count the same way). "Immediately" (after processing,
or on withdrawal of consent, with no period) is due on the day of the event itself.

The inverse is what lets the database do the work: every end-of-period function here is
non-decreasing in the event day, so "due today" is "event day <= cutoff" for one cutoff day,
an indexed range condition on the event column, evaluated server-side.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from lawful.engine import clock
from lawful.manifest.duration import Duration

_EARLIEST = dt.date(1, 1, 1).toordinal()


def last_kept_day(event: dt.date, keep: Duration | None, year_end: str | None = None
                  ) -> dt.date | None:
    """The last day a row whose clock started on `event` is kept; None: due on `event`
    itself (no period: "immediately"). With `year_end`, the period runs from the end of the
    financial year that contains `event`."""
    start = clock.financial_year_end(event, year_end) if year_end else event
    if keep is None:
        return None if year_end is None else start
    return clock.add(start, keep)


def due_day(event: dt.date, keep: Duration | None, year_end: str | None = None) -> dt.date:
    """The first day a row whose clock started on `event` is due."""
    last = last_kept_day(event, keep, year_end)
    return event if last is None else last + dt.timedelta(days=1)


def is_due(event: dt.date, keep: Duration | None, today: dt.date,
           year_end: str | None = None) -> bool:
    return due_day(event, keep, year_end) <= today


def cutoff(keep: Duration | None, today: dt.date, year_end: str | None = None
           ) -> dt.date | None:
    """The latest event day that is due on `today` (every earlier day is due too); None when
    no day is (today is before the first representable period end)."""
    return _last_true(lambda day: is_due(day, keep, today, year_end), today)


def _last_true(pred: Callable[[dt.date], bool], today: dt.date) -> dt.date | None:
    """Binary search for the last day d <= today with pred(d), pred being true up to some
    day and false after it."""
    lo, hi = _EARLIEST, today.toordinal()
    if pred(today):
        return today
    if not _safe(pred, lo):
        return None
    while hi - lo > 1:  # pred(lo) true, pred(hi) false
        mid = (lo + hi) // 2
        if _safe(pred, mid):
            lo = mid
        else:
            hi = mid
    return dt.date.fromordinal(lo)


def _safe(pred: Callable[[dt.date], bool], ordinal: int) -> bool:
    try:
        return pred(dt.date.fromordinal(ordinal))
    except (OverflowError, ValueError):  # a period end past year 9999: never due
        return False
