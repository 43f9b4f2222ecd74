"""The ingest domain: an uploaded file becomes text, metadata, chunks and (optionally)
embeddings. A plug-in of the queue: its tables and SQL functions are its own migration
(``*_create_ingest_files.sql``), its configuration its own variables, and it reaches the
database only through the handler's ``ctx.call``."""

from jobqueue.handlers.ingest.handler import ingest_file

__all__ = ["ingest_file"]
