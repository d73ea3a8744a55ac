"""Business time: working hours per weekday in a time zone, minus holidays.

Pure (no database): `BusinessCalendar.add(start, duration)` is the moment `duration` of
working time after `start`; `elapsed(start, end)` is the working time between two moments.
Days are walked in the calendar's own zone (zoneinfo), so a working day across a daylight
saving change keeps its local hours. Public-holiday sets come from the `holidays` package
(`country`, optional `subdivision`), added to the calendar's own dates. No library found
does the working-hours walk itself, so it is here; it is property-tested against
`elapsed` (tests/workitems/test_calendars.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holiday_sets

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
# A calendar with working hours has some within any two years (holidays aside): that many
# days in a row without any means it has none left, and the walk stops.
MAX_DAYS = 366 * 2


class CalendarError(ValueError):
    """The definition is malformed; `errors` lists {"field", "message"} for each problem."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


def _clock(value: str) -> time | None:
    """`"09:00"` → 09:00; `"24:00"` → None (the end of the day)."""
    hh, mm = (int(x) for x in value.split(":"))
    return None if hh == 24 else time(hh, mm)


@dataclass(frozen=True)
class BusinessCalendar:
    """Working hours per weekday (local `[["09:00", "17:00"], ...]`), a zone, holidays."""

    time_zone: str = "UTC"
    working_hours: dict[str, list[list[str]]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    country: str = ""  # a `holidays` country code, e.g. "DE"; its public holidays count too
    subdivision: str = ""

    @classmethod
    def validated(
        cls,
        *,
        time_zone: str,
        working_hours: dict,
        holidays: Iterable[str | date] = (),
        country: str = "",
        subdivision: str = "",
    ) -> BusinessCalendar:
        """A calendar from wire data; CalendarError names every bad field."""
        errors: list[dict[str, str]] = []
        if not isinstance(time_zone, str) or time_zone not in available_timezones():
            errors.append({"field": "time_zone", "message": f"unknown time zone {time_zone!r} (an IANA name)"})
        if not isinstance(working_hours, dict):
            errors.append(
                {"field": "working_hours", "message": 'must be an object such as {"mon": [["09:00","17:00"]]}'}
            )
            working_hours = {}
        for day, spans in working_hours.items():
            where = f"working_hours.{day}"
            if day not in DAYS:
                errors.append({"field": where, "message": f"unknown day; days are {', '.join(DAYS)}"})
                continue
            if not isinstance(spans, list):
                errors.append({"field": where, "message": "must be a list of [start, end] pairs"})
                continue
            last_end = None
            for i, span in enumerate(spans):
                ok = (
                    isinstance(span, list)
                    and len(span) == 2
                    and all(isinstance(t, str) and _HHMM.match(t) for t in span)
                )
                if not ok or span[0] == "24:00":
                    errors.append({"field": f"{where}[{i}]", "message": 'must be ["HH:MM", "HH:MM"] (00:00–24:00)'})
                    continue
                if span[0] >= span[1]:
                    errors.append({"field": f"{where}[{i}]", "message": "the end must be after the start"})
                elif last_end is not None and span[0] < last_end:
                    errors.append({"field": f"{where}[{i}]", "message": "spans must be in order and not overlap"})
                last_end = span[1]
        dates: set[date] = set()
        for i, raw in enumerate(holidays):
            try:
                dates.add(raw if isinstance(raw, date) else date.fromisoformat(raw))
            except (TypeError, ValueError):
                errors.append({"field": f"holidays[{i}]", "message": "must be a date, YYYY-MM-DD"})
        if country:
            try:
                holiday_sets.country_holidays(country, subdiv=subdivision or None)
            except (NotImplementedError, KeyError, ValueError) as exc:
                errors.append({"field": "country", "message": f"no public holidays known for it ({exc})"})
        if errors:
            raise CalendarError(errors)
        return cls(time_zone, dict(working_hours), frozenset(dates), country, subdivision)

    @cached_property
    def _zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except ZoneInfoNotFoundError as exc:  # a stored calendar whose zone the system lost
            raise CalendarError([{"field": "time_zone", "message": str(exc)}]) from None

    @cached_property
    def _public(self):
        return holiday_sets.country_holidays(self.country, subdiv=self.subdivision or None) if self.country else {}

    @property
    def has_working_time(self) -> bool:
        return any(self.working_hours.get(d) for d in DAYS)

    def is_holiday(self, day: date) -> bool:
        return day in self.holidays or day in self._public

    def _intervals(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """The day's working intervals as UTC datetimes, in order."""
        if self.is_holiday(day):
            return
        for start, end in self.working_hours.get(DAYS[day.weekday()], []):
            s = datetime.combine(day, _clock(start), self._zone)
            e_clock = _clock(end)
            e = (
                datetime.combine(day + timedelta(days=1), time(0), self._zone)
                if e_clock is None
                else datetime.combine(day, e_clock, self._zone)
            )
            s, e = s.astimezone(UTC), e.astimezone(UTC)
            if e > s:  # a span inside a skipped DST hour can vanish
                yield s, e

    @cached_property
    def around_the_clock(self) -> bool:
        """Every hour counts (no holidays): business time is wall-clock time."""
        full = [["00:00", "24:00"]]
        return all(self.working_hours.get(d) == full for d in DAYS) and not self.holidays and not self.country

    # Whole weeks are skipped in one step where nothing in them varies (no holiday, no change of
    # UTC offset): a deadline years away costs a few hundred steps, not one per day.

    @cached_property
    def _week(self) -> timedelta:
        """The working time of a plain week (local clock time, per the definition)."""
        total = timedelta(0)
        for spans in (self.working_hours.get(d, []) for d in DAYS):
            for start, end in spans:
                s_h, s_m = (int(x) for x in start.split(":"))
                e_h, e_m = (int(x) for x in end.split(":"))
                total += timedelta(hours=e_h - s_h, minutes=e_m - s_m)
        return total

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self._zone).astimezone(UTC)

    def _plain_week(self, monday: date) -> bool:
        if any(self.is_holiday(monday + timedelta(days=i)) for i in range(7)):
            return False
        a = datetime.combine(monday, time(0), self._zone)
        b = datetime.combine(monday + timedelta(days=7), time(0), self._zone)
        return a.utcoffset() == b.utcoffset()

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start` (aware datetimes, UTC out)."""
        start = start.astimezone(UTC)
        left = duration
        if left <= timedelta(0):
            return start
        if self.around_the_clock:
            return start + left
        if not self.has_working_time:
            raise CalendarError([{"field": "working_hours", "message": "the calendar has no working time"}])
        cur, idle = start, 0
        day = start.astimezone(self._zone).date()
        while True:
            if day.weekday() == 0 and cur == self._midnight(day) and left > self._week and self._plain_week(day):
                left -= self._week
                day += timedelta(days=7)
                cur, idle = self._midnight(day), 0
                continue
            worked = False
            for s, e in self._intervals(day):
                if e <= cur:
                    continue
                s = max(s, cur)
                if e - s >= left:
                    return s + left
                left -= e - s
                worked = True
            idle = 0 if worked else idle + 1
            if idle > MAX_DAYS:
                raise CalendarError([{"field": "holidays", "message": "no working time within two years"}])
            day += timedelta(days=1)
            cur = self._midnight(day)

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time between `start` and `end` (zero when end <= start)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        if end <= start:
            return total
        if self.around_the_clock:
            return end - start
        cur = start
        day = start.astimezone(self._zone).date()
        while cur < end:
            midnight, next_midnight = self._midnight(day), self._midnight(day + timedelta(days=1))
            if day.weekday() == 0 and cur == midnight:
                week_end = self._midnight(day + timedelta(days=7))
                if week_end <= end and self._plain_week(day):
                    total += self._week
                    cur, day = week_end, day + timedelta(days=7)
                    continue
            for s, e in self._intervals(day):
                lo, hi = max(s, cur), min(e, end)
                if hi > lo:
                    total += hi - lo
            cur, day = next_midnight, day + timedelta(days=1)
        return total
