"""Django's `flush`, able to empty the audit tables on PostgreSQL, where triggers refuse TRUNCATE.

The TRUNCATE statements run with `session_replication_role = replica` (set for the flush's
own transaction only), which PostgreSQL lets only a superuser set (or a role granted SET on
it): a superuser may empty a database as before (the test suite does between transactional
tests), any other role's flush stops at the audit triggers and changes nothing.
"""

from django.core.management.commands import flush
from django.db import DEFAULT_DB_ALIAS, connections


def _truncate_as_replica(execute, sql, params, many, context):
    if sql.lstrip()[:8].upper() == "TRUNCATE":
        context["cursor"].execute("SET LOCAL session_replication_role = replica")
    return execute(sql, params, many, context)


class Command(flush.Command):
    help = (
        flush.Command.help + " On PostgreSQL the audit tables refuse TRUNCATE; the flush empties them only "
        "for a superuser (it runs its TRUNCATE with session_replication_role = replica)."
    )

    def handle(self, **options):
        connection = connections[options.get("database", DEFAULT_DB_ALIAS)]
        if connection.vendor != "postgresql":
            return super().handle(**options)
        with connection.execute_wrapper(_truncate_as_replica):
            return super().handle(**options)
