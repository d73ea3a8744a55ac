"""The naive DRF baseline of bench/http_hot.py (issue 13): one model, one ModelViewSet.

No audit, no outbox, no distribution, no idempotency, no throttle, no access log: a
`ModelViewSet` over one table, DRF's TokenAuthentication and PageNumberPagination (20 a page),
`ModelSerializer(fields="__all__")`. Never a dependency of the project; it is served by the
same gunicorn settings as the project, from its own database, so a create or a read of ours
can be divided by one of it measured in the same run.
"""
