"""
Trigram indexes for the pipeline search (`?q=`), which matches deal titles and company names
anywhere in the text (`UPPER(col) LIKE UPPER('%…%')`). On PostgreSQL a GIN index over the same
UPPER() expression with gin_trgm_ops answers that without reading every deal; SQLite (the
embedded default, small data) has no such index and scans. The company-name index lives here
because the pipeline search is what needs it; the company autocomplete uses it too.
"""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = [
    ("opp_title_trgm_idx", "opportunities_opportunity", "title"),
    ("company_name_trgm_idx", "customers_company", "name"),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, column in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
            f"USING gin ((UPPER({column}::text)) gin_trgm_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _column in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("opportunities", "0002_open_deal_indexes"),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create, drop),
    ]
