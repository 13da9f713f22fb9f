"""Pausing Python's cyclic garbage collector while a run builds its rows.

A batch reads hundreds of thousands of rows into dicts, and none of them forms a reference
cycle. Every few hundred allocations the collector walks the young objects, and every so often
all of them: with that many live dicts, the walks cost about a sixth of a 10,000-person
erasure. Plain reference counting still frees everything that is dropped; the collector runs
again as soon as the run ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    # Only whoever found the collector on turns it back on: with nested runs, or runs in
    # several threads, it never stays off after the last of them ends.
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
