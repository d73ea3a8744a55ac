from rest_framework.pagination import CursorPagination

from config import wsconfig


class Cursor(CursorPagination):
    """`{"results", "next", "previous"}`, `page_size` up to performance.maxPageSize."""

    page_size = 50
    page_size_query_param = "page_size"
    ordering = "-id"

    @property
    def max_page_size(self):
        return wsconfig.get().performance.maxPageSize

    def get_ordering(self, request, queryset, view):
        # The view's `ordering` filter (django-filter) decides; the id breaks ties so
        # the cursor is stable even when many rows share a priority or due date.
        ordering = getattr(view, "cursor_ordering", None)
        if ordering:
            return ordering(request)
        return (self.ordering,)
