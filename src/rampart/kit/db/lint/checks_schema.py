"""Schema lints: no extension in an exposed schema, every foreign key indexed."""

from __future__ import annotations

import psycopg

from rampart.kit.db.lint.model import LintConfig
from rampart.kit.db.lint.registry import Lint, lint, rows

EXTENSIONS = """
SELECT e.extname AS extension, quote_ident(n.nspname) AS schema, e.extrelocatable AS relocatable
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE n.nspname = ANY(%(schemas)s)
 ORDER BY 1
"""


@lint("extension_in_exposed_schema", "no extension installed in public or our schemas")
def extension_in_exposed_schema(conn: psycopg.Connection, config: LintConfig, me: Lint):
    schemas = sorted({*config.exposed_schemas, *config.schemas})
    for ext in rows(conn, EXTENSIONS, schemas=schemas):
        move = (
            f"ALTER EXTENSION {ext['extension']} SET SCHEMA extensions;"
            if ext["relocatable"]
            else f"DROP EXTENSION {ext['extension']}; CREATE EXTENSION {ext['extension']} "
            "SCHEMA extensions;"
        )
        yield me.finding(
            "warn",
            f"extension {ext['extension']}",
            f"installed in schema {ext['schema']}: its tables, views and functions sit "
            "beside ours, with the grants the extension gives them (often to PUBLIC)",
            f"CREATE SCHEMA IF NOT EXISTS extensions; {move}",
        )


# An index covers a foreign key when its leading key columns are the key's columns (in any
# order); partial and invalid indexes do not count, nor INCLUDE columns.
UNINDEXED = """
SELECT format('%%I.%%I', n.nspname, c.relname) AS rel, k.conname AS constraint_name,
       confrelid::regclass::text AS referenced,
       ARRAY(SELECT quote_ident(a.attname)
               FROM unnest(k.conkey) WITH ORDINALITY AS u(attnum, i)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
              ORDER BY u.i) AS columns
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.contype = 'f' AND k.conparentid = 0 AND n.nspname = ANY(%(schemas)s)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT EXISTS (
     SELECT 1 FROM pg_index i
      WHERE i.indrelid = k.conrelid AND i.indisvalid AND i.indpred IS NULL
        AND i.indnkeyatts >= cardinality(k.conkey)
        AND (SELECT array_agg(x ORDER BY x)
               FROM unnest((i.indkey::int2[])[0:cardinality(k.conkey) - 1]) AS x)
          = (SELECT array_agg(x ORDER BY x) FROM unnest(k.conkey) AS x))
 ORDER BY 1, 2
"""


@lint("unindexed_foreign_key", "every foreign key is covered by an index on its columns")
def unindexed_foreign_key(conn: psycopg.Connection, config: LintConfig, me: Lint):
    for fk in rows(conn, UNINDEXED, schemas=list(config.schemas)):
        columns = ", ".join(fk["columns"])
        yield me.finding(
            "warn",
            f"{fk['rel']} constraint {fk['constraint_name']}",
            f"foreign key ({columns}) -> {fk['referenced']} has no index starting with its "
            f"columns: each delete or key update in {fk['referenced']} scans {fk['rel']} "
            "under lock",
            f"CREATE INDEX CONCURRENTLY ON {fk['rel']} ({columns});",
        )
