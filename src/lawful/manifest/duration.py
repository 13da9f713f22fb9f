"""Durations as privacy notices write them: "30 days", "1 month", "7 years", "4 weeks".

Kept as (count, unit) rather than a timedelta because a month and a year are calendar units:
"one month from receipt" (Art. 12(3)) is not 30 days, and the retention engine must add them
on the calendar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

Unit = Literal["hours", "days", "weeks", "months", "years"]

_UNITS: dict[str, Unit] = {
    "hour": "hours", "hours": "hours", "h": "hours",
    "day": "days", "days": "days", "d": "days",
    "week": "weeks", "weeks": "weeks", "w": "weeks",
    "month": "months", "months": "months",
    "year": "years", "years": "years", "y": "years",
}
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "a": 1, "an": 1}
_PATTERN = re.compile(r"^\s*(\d+|[a-z]+)\s*([a-z]+)\s*$")
# Average lengths, used only to compare durations of different units (a deadline check),
# never to compute a date.
_APPROX_DAYS = {"hours": 1 / 24, "days": 1, "weeks": 7, "months": 30.436875, "years": 365.2425}


@dataclass(frozen=True, order=False)
class Duration:
    count: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Duration:
        if text.strip().lower() in {"immediately", "none", "0"}:
            return cls(0, "days")
        match = _PATTERN.match(text.lower())
        number, unit = match.groups() if match else ("", "")
        count = int(number) if number.isdigit() else _WORDS.get(number)
        if count is None or unit not in _UNITS:
            raise ValueError(f"{text!r} is not a duration; write e.g. '30 days', '1 month'")
        return cls(count, _UNITS[unit])

    @property
    def approx_days(self) -> float:
        return self.count * _APPROX_DAYS[self.unit]

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.count == 1 else self.unit
        return f"{self.count} {unit}"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        def validate(value: Any) -> Duration:
            if isinstance(value, Duration):
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return cls(value, "days")
            if not isinstance(value, str):
                raise PydanticCustomError("duration", "expected a duration such as '30 days'")
            try:
                return cls.parse(value)
            except ValueError as exc:
                raise PydanticCustomError("duration", str(exc)) from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )
