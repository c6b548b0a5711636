"""The search indexes: a GIN index on PostgreSQL; on SQLite an FTS5 table kept in sync by triggers."""

from django.db import migrations

SQLITE = [
    "CREATE VIRTUAL TABLE knowledge_passage_fts USING fts5(heading, text, content='knowledge_passage', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER knowledge_passage_fts_ai AFTER INSERT ON knowledge_passage BEGIN "
    "INSERT INTO knowledge_passage_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
    "CREATE TRIGGER knowledge_passage_fts_ad AFTER DELETE ON knowledge_passage BEGIN "
    "INSERT INTO knowledge_passage_fts(knowledge_passage_fts, rowid, heading, text) "
    "VALUES ('delete', old.id, old.heading, old.text); END",
    "CREATE TRIGGER knowledge_passage_fts_au AFTER UPDATE ON knowledge_passage BEGIN "
    "INSERT INTO knowledge_passage_fts(knowledge_passage_fts, rowid, heading, text) "
    "VALUES ('delete', old.id, old.heading, old.text); "
    "INSERT INTO knowledge_passage_fts(rowid, heading, text) VALUES (new.id, new.heading, new.text); END",
]
SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS knowledge_passage_fts_au",
    "DROP TRIGGER IF EXISTS knowledge_passage_fts_ad",
    "DROP TRIGGER IF EXISTS knowledge_passage_fts_ai",
    "DROP TABLE IF EXISTS knowledge_passage_fts",
]
POSTGRES = ["CREATE INDEX knowledge_passage_search ON knowledge_passage USING gin (search_vector) WITH (fastupdate = off)"]
POSTGRES_UNDO = ["DROP INDEX IF EXISTS knowledge_passage_search"]


def _run(statements: dict):
    def run(apps, schema_editor):
        for sql in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRES}), _run({"sqlite": SQLITE_UNDO, "postgresql": POSTGRES_UNDO})
        )
    ]
