"""Keyset ("cursor") pagination over (ordering field, id).

DRF's CursorPagination keeps only the first ordering field in its cursor plus
an offset, which skips and repeats rows when walking backwards through ties
(many items share a priority). This one puts the whole key — the field's
value and the id — in the cursor, so `next` and `previous` are exact in every
ordering and cost one index range scan each, however deep the page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from django.db import models
from django.db.models import Q
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from api.problems import ProblemException
from config import wsconfig
from workitems import schemas

MAX_KEY = 2**63 - 1  # bigint: an integer key past it is no row's


def _bad_cursor() -> ProblemException:
    return ProblemException(
        "validation-error",
        "cursor is not valid: use the `next` or `previous` link of a page as it is",
        errors=[{"field": "cursor", "message": "invalid cursor"}],
    )


def _field_of(queryset, name: str) -> models.Field:
    """The model field (or annotation's output field) a queryset is ordered by."""
    annotation = queryset.query.annotations.get(name)
    return annotation.output_field if annotation is not None else queryset.model._meta.get_field(name)


@dataclass(frozen=True)
class Window:
    """What a request asks of the keyset: the ordering field, the direction the index is walked,
    the page size, the cursor's (value, id) or None, and whether it pages backwards."""

    field: str
    scan_desc: bool
    size: int
    after: tuple | None
    reverse: bool


class Cursor(BasePagination):
    """`{"results", "next", "previous"}`; `page_size` from 1 to performance.maxPageSize (default 50)."""

    page_size = 50
    page_size_query_param = "page_size"
    cursor_query_param = "cursor"

    @property
    def max_page_size(self) -> int:
        return wsconfig.get().performance.maxPageSize

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ProblemException(
                "validation-error",
                f"page_size must be an integer from 1 to {self.max_page_size}",
                errors=[{"field": "page_size", "message": "out of range"}],
            )
        return int(raw)

    # --- cursor encoding ---------------------------------------------------------------

    @staticmethod
    def _encode(value, pk: int, reverse: bool) -> str:
        kind = "dt" if isinstance(value, datetime) else "v"
        raw = {"k": kind, "v": value.isoformat() if kind == "dt" else value, "i": pk, "r": int(reverse)}
        return base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode().rstrip("=")

    @staticmethod
    def _decode(token: str):
        try:
            raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            value = raw["v"]
            if raw["k"] == "dt":
                value, message = schemas.parse_iso_time(value, latest=schemas.MAX_READABLE)
                if message:
                    raise ValueError(message)
            pk, reverse = raw["i"], bool(raw["r"])
            if not isinstance(pk, int) or isinstance(pk, bool) or not -MAX_KEY <= pk <= MAX_KEY:
                raise ValueError
            if not isinstance(value, int | str | datetime) or isinstance(value, str) and schemas.nul_errors(value):
                raise ValueError  # text PostgreSQL cannot compare: NUL, lone surrogates
            return value, pk, reverse
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
            raise _bad_cursor() from None

    @staticmethod
    def _checked(value, field: models.Field):
        """The cursor's value, if it has the type the ordering's `field` holds (a time for a
        DateTimeField, an integer in bigint's range for an IntegerField, a string otherwise):
        a forged cursor with another (a string for a priority, a number for a name) is a bad cursor."""
        if isinstance(field, models.DateTimeField):
            ok = isinstance(value, datetime)
        elif isinstance(field, models.IntegerField):
            ok = isinstance(value, int) and not isinstance(value, bool) and -MAX_KEY <= value <= MAX_KEY
        else:
            ok = isinstance(value, str)
        if not ok:
            raise _bad_cursor()
        return value

    # --- paging ------------------------------------------------------------------------

    def window(self, request, view, field_of) -> Window:
        """The page the request asks for: ordering (the view's `cursor_ordering`, else by id),
        size, and the cursor's position checked against the type of the ordering's field
        (`field_of(name)`)."""
        self.request = request
        ordering = getattr(view, "cursor_ordering", None)
        first = ordering(request)[0] if ordering else "-id"
        desc, field = first.startswith("-"), first.lstrip("-")
        token = request.query_params.get(self.cursor_query_param)
        position = self._decode(token) if token else None
        reverse = bool(position and position[2])
        after = None
        if position is not None:
            after = (self._checked(position[0], field_of(field)), position[1])
        return Window(field, desc != reverse, self.get_page_size(request), after, reverse)

    @staticmethod
    def apply(queryset, w: Window, after: tuple | None):
        """`queryset` in the window's order, past `after` ((value, id), or None), one row more
        than the page (to know whether another follows)."""
        field = w.field
        qs = queryset.order_by(f"-{field}", "-id") if w.scan_desc else queryset.order_by(field, "id")
        if after is not None:
            value, pk = after
            op = "lt" if w.scan_desc else "gt"
            qs = qs.filter(Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"id__{op}": pk}))
        return qs[: w.size + 1]

    def page(self, rows: list, w: Window) -> list:
        """The page of `rows` (what `apply` selected), and the keys of its next/previous links."""
        more = len(rows) > w.size
        rows = rows[: w.size]
        if w.reverse:
            rows.reverse()
        field = w.field
        key = (lambda row: (getattr(row, field), row.pk)) if field != "id" else (lambda row: (row.pk, row.pk))
        came_from = w.after is not None
        self.next_key = key(rows[-1]) if rows and (more if not w.reverse else came_from) else None
        self.previous_key = key(rows[0]) if rows and (more if w.reverse else came_from) else None
        return rows

    def paginate_queryset(self, queryset, request, view=None):
        w = self.window(request, view, lambda name: _field_of(queryset, name))
        return self.page(list(self.apply(queryset, w, w.after)), w)

    def _link(self, key, reverse: bool):
        if key is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self._encode(key[0], key[1], reverse))

    def get_paginated_response(self, data):
        return Response(
            {
                "results": data,
                "next": self._link(self.next_key, False),
                "previous": self._link(self.previous_key, True),
            }
        )
