"""Pages of the API's lists: `?page=` and `?page_size=` (up to 1000)."""

from rest_framework.pagination import CursorPagination, PageNumberPagination


class Pages(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 1000


class NewestFirst(CursorPagination):
    """The campaign log, newest first, by a cursor: no COUNT over millions of rows per page."""

    ordering = ("-action_date", "-id")
    page_size_query_param = "page_size"
    max_page_size = 1000
