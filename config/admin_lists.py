"""Admin change lists that cost the same on a table of ten million rows as on a small one.

Django's defaults read the whole table three ways: the paginator's `COUNT(*)`, the
`SELECT DISTINCT` behind `date_hierarchy` and behind a list filter on a field without
choices (AllValuesFieldListFilter), and the facet counts. The admins of the big tables
(work items, audit records, outbox events, deliveries, the access log) use instead:

- `EstimatedCountPaginator`: asks the planner first (EXPLAIN: pg_class.reltuples and the
  column statistics, no rows read); above `exact_up_to` rows that estimate is the count and
  the list says "about". At or below it, counts exactly in one statement that reads at most
  `exact_up_to + 1` rows (`COUNT(*)` over a `LIMIT`ed subquery). Its page links stop at the
  pages near the current one: a far page is an OFFSET that reads every row before it.
- `fixed_choices_filter`: a list filter whose choices are given, not read from the table.
- `ShowFacets.NEVER`, set by the admins that use these (facets are a COUNT per choice).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property


def planner_estimate(queryset: QuerySet) -> int | None:
    """The planner's row estimate for `queryset` (PostgreSQL); None elsewhere."""
    conn = connections[queryset.db]
    if conn.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with conn.cursor() as cur:
        cur.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cur.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a whole table (see the module's docstring)."""

    exact_up_to = 1000
    pages_shown = 3  # on each side of the current page

    estimated = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        estimate = planner_estimate(qs)
        if estimate is None:  # SQLite (make run's demo): small, counted
            return qs.count()
        if estimate > self.exact_up_to:
            # Not even a bounded count: finding 1,001 matches of a filter that one row in
            # 200 passes reads 200,000 rows, ten times what the page itself reads.
            self.estimated = True
            return estimate
        # Reads at most exact_up_to + 1 rows, whatever the table's size.
        n = qs[: self.exact_up_to + 1].count()
        if n <= self.exact_up_to:
            return n
        self.estimated = True  # the planner guessed low
        return n

    def get_elided_page_range(self, number=1, *, on_each_side=3, on_ends=2):
        if not self.estimated:
            yield from super().get_elided_page_range(number, on_each_side=on_each_side, on_ends=on_ends)
            return
        number = self.validate_number(number)
        first = max(1, number - self.pages_shown)
        if first > 1:
            yield 1
            if first > 2:
                yield self.ELLIPSIS
        last = min(self.num_pages, number + self.pages_shown)
        yield from range(first, last + 1)
        if last < self.num_pages:
            yield self.ELLIPSIS  # no link to the estimated last page: an OFFSET over the table


class BigTableAdmin(admin.ModelAdmin):
    """The change-list settings of a big table's admin: no full counts, no facets."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER


def fixed_choices_filter(
    title: str,
    parameter_name: str,
    choices: Iterable[tuple[str, str, Q | Callable[[], Q]]],
) -> type[admin.SimpleListFilter]:
    """A list filter over given choices: (value, label, the Q it filters by, or a function
    returning it when it depends on the time). Nothing is read from the table to list them."""
    table = {value: (label, q) for value, label, q in choices}

    class FixedChoicesFilter(admin.SimpleListFilter):
        def lookups(self, request, model_admin):
            return [(value, label) for value, (label, _) in table.items()]

        def queryset(self, request, queryset):
            if self.value() not in table:
                return queryset
            q = table[self.value()][1]
            return queryset.filter(q() if callable(q) else q)

    return type(
        f"{parameter_name.title().replace('_', '')}Filter",
        (FixedChoicesFilter,),
        {"title": title, "parameter_name": parameter_name},
    )


def field_choices_filter(field: str, values: Iterable[str], title: str | None = None) -> type[admin.SimpleListFilter]:
    """`fixed_choices_filter` for `field` equal to one of `values` (each its own label)."""
    return fixed_choices_filter(title or field.replace("_", " "), field, [(v, v, Q(**{field: v})) for v in values])
