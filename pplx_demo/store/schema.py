"""The tables: numbered migrations (`MIGRATIONS`, applied on open up to `SCHEMA_VERSION`) and the one
stable chunk order every read uses."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        "CREATE SEQUENCE corpus_ids START 1",
        "CREATE SEQUENCE document_ids START 1",
        "CREATE SEQUENCE chunk_ids START 1",
        """CREATE TABLE corpora (
            id BIGINT PRIMARY KEY, name VARCHAR NOT NULL, owner VARCHAR, source VARCHAR NOT NULL,
            chunking VARCHAR, created DOUBLE NOT NULL, last_used DOUBLE NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE documents (
            id BIGINT PRIMARY KEY, corpus_id BIGINT NOT NULL, position INTEGER NOT NULL,
            uri VARCHAR NOT NULL, title VARCHAR NOT NULL, text VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
            metadata VARCHAR NOT NULL, external_id VARCHAR, lang VARCHAR, chunk_list_hash VARCHAR NOT NULL)""",
        """CREATE TABLE chunks (
            id BIGINT PRIMARY KEY, corpus_id BIGINT NOT NULL, document_id BIGINT NOT NULL,
            position INTEGER NOT NULL, ord INTEGER NOT NULL, text VARCHAR NOT NULL,
            char_start INTEGER NOT NULL, char_end INTEGER NOT NULL, token_count INTEGER NOT NULL,
            content_hash VARCHAR NOT NULL)""",
        """CREATE TABLE embeddings (
            model_key VARCHAR NOT NULL, variant VARCHAR NOT NULL, chunk_hash VARCHAR NOT NULL,
            context_key VARCHAR NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, created DOUBLE NOT NULL,
            PRIMARY KEY (model_key, variant, chunk_hash, context_key))""",
        "CREATE INDEX documents_corpus ON documents (corpus_id)",
        "CREATE INDEX chunks_corpus ON chunks (corpus_id)",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

_CHUNK_ORDER = "d.corpus_id, d.position, k.position, k.id"
