"""Business time (workitems.calendars): hand-checked cases, DST, holidays, and properties
(`elapsed(start, add(start, d)) == d`, monotonic, never inside closed hours) under hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workitems.calendars import BusinessCalendar, CalendarError

WEEKDAYS_9_17 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
BERLIN = BusinessCalendar.validated(time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_17)
SPLIT = BusinessCalendar.validated(
    time_zone="America/New_York",
    working_hours={"mon": [["08:00", "12:00"], ["13:00", "17:30"]], "sat": [["10:00", "14:00"]]},
    holidays=["2026-12-07"],
)


def berlin(*args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Berlin"))


def test_add_inside_a_day_and_across_the_night_and_the_weekend():
    fri_16 = berlin(2026, 12, 4, 16, 0)
    assert BERLIN.add(fri_16, timedelta(minutes=30)) == berlin(2026, 12, 4, 16, 30)
    assert BERLIN.add(fri_16, timedelta(hours=2)) == berlin(2026, 12, 7, 10, 0)  # Monday 10:00
    assert BERLIN.add(berlin(2026, 12, 5, 12, 0), timedelta(hours=1)) == berlin(2026, 12, 7, 10, 0)  # from Saturday
    assert BERLIN.add(berlin(2026, 12, 7, 6, 0), timedelta(hours=8)) == berlin(2026, 12, 7, 17, 0)  # before opening
    assert BERLIN.add(berlin(2026, 12, 7, 6, 0), timedelta(0)) == berlin(2026, 12, 7, 6, 0)


def test_holidays_own_and_public_are_skipped():
    with_own = BusinessCalendar.validated(
        time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_17, holidays=["2026-12-07"]
    )
    assert with_own.add(berlin(2026, 12, 4, 16, 0), timedelta(hours=2)) == berlin(2026, 12, 8, 10, 0)
    german = BusinessCalendar.validated(time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_17, country="DE")
    # 24 and 31 December are working days; 25 and 26 (Fri, Sat) public holidays; 1 Jan too.
    assert german.add(berlin(2026, 12, 24, 16, 0), timedelta(hours=2)) == berlin(2026, 12, 28, 10, 0)
    assert german.add(berlin(2026, 12, 31, 16, 0), timedelta(hours=2)) == berlin(2027, 1, 4, 10, 0)


def test_split_days_and_a_holiday_in_new_york():
    ny = ZoneInfo("America/New_York")
    mon = datetime(2026, 11, 30, 11, 0, tzinfo=ny)
    assert SPLIT.add(mon, timedelta(hours=2)) == datetime(2026, 11, 30, 14, 0, tzinfo=ny)  # lunch skipped
    sat = SPLIT.add(mon, timedelta(hours=7, minutes=30))  # 5.5 h left on Monday, then 2 h from Saturday 10:00
    assert sat == datetime(2026, 12, 5, 12, 0, tzinfo=ny)
    # Monday 7 December is a holiday: Saturday's remainder, then Saturday the 12th
    assert SPLIT.add(datetime(2026, 12, 5, 13, 0, tzinfo=ny), timedelta(hours=2)) == datetime(
        2026, 12, 12, 11, 0, tzinfo=ny
    )


def test_a_working_day_across_a_dst_change_keeps_its_local_hours():
    always = BusinessCalendar.validated(
        time_zone="Europe/Berlin", working_hours={d: [["00:00", "24:00"]] for d in ("sat", "sun", "mon")}
    )
    # Sunday 29 March 2026 has 23 hours in Berlin.
    assert always.elapsed(berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)) == timedelta(hours=23)
    assert BERLIN.add(berlin(2026, 3, 27, 16, 0), timedelta(hours=2)) == berlin(2026, 3, 30, 10, 0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"time_zone": "Mars/Olympus", "working_hours": WEEKDAYS_9_17}, "time_zone"),
        ({"time_zone": "UTC", "working_hours": {"monday": [["09:00", "17:00"]]}}, "working_hours.monday"),
        ({"time_zone": "UTC", "working_hours": {"mon": [["17:00", "09:00"]]}}, "working_hours.mon[0]"),
        ({"time_zone": "UTC", "working_hours": {"mon": [["9:00", "17:00"]]}}, "working_hours.mon[0]"),
        (
            {"time_zone": "UTC", "working_hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}},
            "working_hours.mon[1]",
        ),
        ({"time_zone": "UTC", "working_hours": WEEKDAYS_9_17, "holidays": ["2026-02-30"]}, "holidays[0]"),
        ({"time_zone": "UTC", "working_hours": WEEKDAYS_9_17, "country": "XX"}, "country"),
    ],
)
def test_bad_definitions_name_the_field(kwargs, field):
    with pytest.raises(CalendarError) as exc:
        BusinessCalendar.validated(**kwargs)
    assert field in [e["field"] for e in exc.value.errors]


def test_long_spans_and_the_around_the_clock_shortcut():
    start = datetime(2026, 1, 5, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    five_years = BERLIN.elapsed(start, start.replace(year=2031))
    assert timedelta(hours=8 * 5 * 250) < five_years < timedelta(hours=8 * 5 * 270)
    always = BusinessCalendar.validated(
        time_zone="UTC",
        working_hours={d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    assert always.around_the_clock and not BERLIN.around_the_clock
    assert always.elapsed(start, start.replace(year=3000)) == start.replace(year=3000) - start
    assert always.add(start, timedelta(days=400)) == start + timedelta(days=400)


def test_a_calendar_without_working_time_refuses_to_compute():
    empty = BusinessCalendar.validated(time_zone="UTC", working_hours={})
    with pytest.raises(CalendarError):
        empty.add(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40))
calendars = st.sampled_from([BERLIN, SPLIT])


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=moments, d=durations)
def test_elapsed_undoes_add(cal, start, d):
    end = cal.add(start, d)
    assert end >= start
    assert cal.elapsed(start, end) == d


@settings(max_examples=200, deadline=None)
@given(cal=calendars, start=moments, a=durations, b=durations)
def test_add_is_monotonic_and_additive(cal, start, a, b):
    lo, hi = sorted((a, b))
    assert cal.add(start, lo) <= cal.add(start, hi)
    assert cal.add(cal.add(start, lo), hi - lo) == cal.add(start, hi)


@settings(max_examples=200, deadline=None)
@given(start=moments, d=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=10)))
def test_a_deadline_never_falls_in_closed_hours(start, d):
    end = BERLIN.add(start, d).astimezone(ZoneInfo("Europe/Berlin"))
    assert end.weekday() < 5, end
    assert time(9, 0) < end.time() <= time(17, 0), end  # a positive amount of work ends inside a span


GERMAN = BusinessCalendar.validated(time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_17, country="DE")


def reference_elapsed(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """The plain day-by-day walk, no week skipping: what the fast path must agree with."""
    total = timedelta(0)
    day = start.astimezone(ZoneInfo(cal.time_zone)).date() - timedelta(days=1)
    while True:
        for s, e in cal._intervals(day):
            lo, hi = max(s, start), min(e, end)
            if hi > lo:
                total += hi - lo
        if cal._midnight(day) > end:
            return total
        day += timedelta(days=1)


long_durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=120))


@settings(max_examples=60, deadline=None)
@given(
    cal=st.sampled_from([BERLIN, SPLIT, GERMAN]),
    start=moments,
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)),
)
def test_week_skipping_agrees_with_the_day_walk(cal, start, span):
    end = start + span
    assert cal.elapsed(start, end) == reference_elapsed(cal, start, end)


@settings(max_examples=60, deadline=None)
@given(cal=st.sampled_from([BERLIN, SPLIT, GERMAN]), start=moments, d=long_durations)
def test_elapsed_undoes_add_over_long_spans(cal, start, d):
    end = cal.add(start, d)
    assert cal.elapsed(start, end) == d
    assert reference_elapsed(cal, start, end) == d


def test_a_deadline_decades_away_skips_whole_weeks(monkeypatch):
    visited = []
    walk = BusinessCalendar._intervals

    def counting(self, day):
        visited.append(day)
        return walk(self, day)

    monkeypatch.setattr(BusinessCalendar, "_intervals", counting)
    start = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    seventy_years = timedelta(hours=8 * 5 * 52 * 70)
    due = GERMAN.add(start, seventy_years)
    assert GERMAN.elapsed(start, due) == seventy_years
    assert due.year > 2090
    # ~25,000 days each way; only weeks with a holiday or a DST change are walked day by day
    assert len(visited) < 2 * 70 * 7 * 12, len(visited)
