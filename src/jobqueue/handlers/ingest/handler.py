"""``ingest_file``: an uploaded file becomes text, metadata, overlapping chunks and, with an
embeddings endpoint configured, embeddings.

1. the ``ingest_files`` row names the object (bucket, path);
2. the object is streamed from Storage to a temporary file (bounded memory, size limit);
3. a file with the same bytes already processed is reused, not redone;
4. the real type comes from the bytes; text is extracted as a stream of pieces;
5. chunks are written in batches (a retry starts the file's chunks afresh), embedded if
   configured;
6. the row is marked processed with its metadata; a corrupt file fails for good with why,
   an unsupported one is processed with metadata only and says so.
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from typing import Any

from jobqueue.errors import NotConfigured
from jobqueue.handler import JobContext, PermanentJobError, job_handler
from jobqueue.handlers.ingest.chunks import Chunk, chunked
from jobqueue.handlers.ingest.detect import detect
from jobqueue.handlers.ingest.extract import SUPPORTED, CorruptFile, Extracted, Limits, extract
from jobqueue.handlers.ingest.settings import IngestSettings, ingest_settings

# Chunks written per database call; the stored text_content keeps at most this much (the
# chunks hold all of it), so a very large file never becomes one huge value in memory.
BATCH = 200
TEXT_CONTENT_LIMIT = 1024 * 1024


def configuration_problem() -> str | None:
    try:
        ingest_settings().storage()
    except NotConfigured as exc:
        return str(exc)
    return None


@job_handler("ingest_file", timeout_seconds=600, check=configuration_problem)
def ingest_file(input: Any, ctx: JobContext) -> dict[str, Any]:
    file_id = _file_id(input)
    rows = ctx.call("get_ingest_file", p_file_id=file_id)
    if not rows:
        raise PermanentJobError(f"no ingest_files row with id {file_id}")
    row = rows[0]
    try:
        settings = ingest_settings()
        supabase_url, key = settings.storage()
    except NotConfigured as exc:
        # Fails at once, naming the variable: `jobqueue retry` reruns the files once the
        # deployment is fixed, instead of every attempt being spent on the same fault.
        raise PermanentJobError(str(exc)) from None
    # httpx and certifi load with the first file, not with every new instance: a health check
    # or a call running other job types never pays their 65 ms.
    from jobqueue.handlers.ingest.fetch import download

    name = f"{row['bucket']}/{row['path']}"
    progress = Progress(ctx, file_id)
    progress.report("downloading", 0, None, force=True)
    got = download(
        supabase_url,
        key,
        row["bucket"],
        row["path"],
        settings.ingest_max_bytes,
        timeout=max(5.0, min(120.0, ctx.time_left())),
        progress=lambda done, total: progress.report("downloading", done, total),
    )
    progress.report("extracting", 0, None, force=True)
    try:
        metadata: dict[str, Any] = {"size_bytes": got.size, "sha256": got.sha256}
        [duplicate] = ctx.call(
            "find_processed_duplicate", p_file_id=file_id, p_sha256=got.sha256
        ) or [{"value": None}]
        if duplicate["value"] is not None:
            return _reuse(ctx, file_id, str(duplicate["value"]), metadata, got.size)
        declared = row.get("content_type") or mimetypes.guess_type(row["path"])[0]
        detected = detect(got.path, row["path"], declared)
        metadata |= {"detected_type": detected.type, "declared_type": declared}
        if detected.encoding:
            metadata["encoding"] = detected.encoding
        if detected.type not in SUPPORTED:
            metadata |= {
                "unsupported": f"{detected.type} has no text extractor: stored with "
                "its metadata only",
                "characters": 0,
                "words": 0,
                "chunks": 0,
            }
            ctx.call("clear_file_chunks", p_file_id=file_id)
            text = None
        else:
            facts = Extracted()
            try:
                limits = Limits(expanded_bytes=settings.ingest_max_expanded_bytes)
                pieces = extract(got.path, detected, name, facts, limits)
                text = _chunks_and_text(ctx, settings, file_id, name, pieces, metadata, progress)
            except (CorruptFile, PermanentJobError) as exc:
                # A file that fails for good keeps none of the chunks written before the fault.
                ctx.call("clear_file_chunks", p_file_id=file_id)
                raise PermanentJobError(str(exc)) from None
            metadata |= facts.facts
        ctx.call(
            "record_ingest_result",
            p_file_id=file_id,
            p_text=text,
            p_metadata=metadata,
            p_detected_type=detected.type,
            p_size_bytes=got.size,
            p_sha256=got.sha256,
        )
        return {
            "file_id": file_id,
            **{k: metadata.get(k) for k in ("detected_type", "size_bytes", "characters", "chunks")},
        }
    finally:
        got.path.unlink(missing_ok=True)


def _file_id(input: Any) -> str:
    file_id = input.get("file_id") if isinstance(input, dict) else None
    try:
        return str(uuid.UUID(str(file_id)))
    except ValueError:
        raise PermanentJobError(
            "input.file_id must be the id (a UUID) of an ingest_files row"
        ) from None


def _chunks_and_text(
    ctx: JobContext,
    settings: IngestSettings,
    file_id: str,
    name: str,
    pieces: Any,
    metadata: dict[str, Any],
    progress: Progress,
) -> str:
    """Writes the chunks in batches; returns the text to store (its first MiB); counts
    characters and words into ``metadata``."""
    embedder = None
    if settings.embeddings:
        from jobqueue.handlers.ingest.embed import Embedder

        key = settings.embeddings_api_key
        embedder = Embedder(
            str(settings.embeddings_url),
            str(settings.embeddings_model),
            key.get_secret_value() if key else None,
            ctx,
        )
    kept: list[str] = []
    kept_chars = characters = words = 0
    in_word = False

    def counted(stream: Any) -> Any:
        nonlocal kept_chars, characters, words, in_word
        for piece in stream:
            characters += len(piece)
            if characters > settings.ingest_max_text_chars:
                raise PermanentJobError(
                    f"{name} holds more than INGEST_MAX_TEXT_CHARS "
                    f"({settings.ingest_max_text_chars:,}) characters of text: raise the limit "
                    "or split the file"
                )
            words += len(piece.split())
            # A word cut between two pieces is one word, not two.
            if in_word and piece[:1] and not piece[:1].isspace():
                words -= 1
            in_word = bool(piece) and not piece[-1:].isspace()
            if kept_chars < TEXT_CONTENT_LIMIT:
                kept.append(piece[: TEXT_CONTENT_LIMIT - kept_chars])
                kept_chars += len(kept[-1])
            yield piece

    ctx.call("clear_file_chunks", p_file_id=file_id)
    batch: list[Chunk] = []
    total = embedded = 0
    try:
        for chunk in chunked(
            counted(pieces), settings.ingest_chunk_chars, settings.ingest_chunk_overlap
        ):
            batch.append(chunk)
            if total + len(batch) > settings.ingest_max_chunks:
                raise PermanentJobError(
                    f"{name} makes more than INGEST_MAX_CHUNKS ({settings.ingest_max_chunks:,}) "
                    "chunks: raise the limit or INGEST_CHUNK_CHARS, or split the file"
                )
            if len(batch) >= BATCH:
                embedded += _write(ctx, file_id, batch, embedder, settings.embeddings_batch)
                total += len(batch)
                batch = []
                progress.report("embedding" if embedder else "chunking", total, None)
                _keep_going(ctx)
        if batch:
            embedded += _write(ctx, file_id, batch, embedder, settings.embeddings_batch)
            total += len(batch)
    finally:
        if embedder is not None:
            embedder.close()
    metadata |= {"characters": characters, "words": words, "chunks": total}
    if embedder is not None:
        metadata["embedded_chunks"] = embedded
    if characters > TEXT_CONTENT_LIMIT:
        metadata["text_content_truncated_at"] = TEXT_CONTENT_LIMIT
    return "".join(kept)


def _keep_going(ctx: JobContext) -> None:
    """A large file outlives a lease: renew it while there is time left under the handler's
    own limit (ingest_file's 600 s), and stop promptly once there is none."""
    if ctx.time_left() < 30:
        ctx.extend_lease()
    ctx.check_deadline()


def _write(ctx: JobContext, file_id: str, batch: list[Chunk], embedder: Any, size: int) -> int:
    rows: list[dict[str, Any]] = [
        {"index": c.index, "start": c.start, "content": c.content} for c in batch
    ]
    if embedder is not None:
        for offset in range(0, len(rows), size):
            part = rows[offset : offset + size]
            vectors = embedder.embed([r["content"] for r in part])
            for row, vector in zip(part, vectors, strict=True):
                row["embedding"] = vector
                row["model"] = embedder.model
    ctx.call("add_file_chunks", p_file_id=file_id, p_chunks=rows)
    return len(rows) if embedder is not None else 0


class Progress:
    """The file's stage and progress on its ingest_files row, for a client watching it
    (Supabase Realtime): written at each new stage and at most a few times a second."""

    EVERY_SECONDS = 0.25

    def __init__(self, ctx: JobContext, file_id: str) -> None:
        self._ctx = ctx
        self._file_id = file_id
        self._stage = ""
        self._last = 0.0

    def report(self, stage: str, done: int, total: int | None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and stage == self._stage and now - self._last < self.EVERY_SECONDS:
            return
        self._stage, self._last = stage, now
        self._ctx.call(
            "set_ingest_progress",
            p_file_id=self._file_id,
            p_stage=stage,
            p_done=done,
            p_total=total,
        )


def _reuse(
    ctx: JobContext, file_id: str, original: str, metadata: dict[str, Any], size: int
) -> dict[str, Any]:
    """The same bytes were processed before: copy that work instead of redoing it."""
    [done] = ctx.call("get_ingest_file_result", p_file_id=original)
    copied = ctx.call("copy_file_chunks", p_from=original, p_to=file_id)
    reused = {**(done["metadata"] or {}), **metadata, "duplicate_of": original}
    ctx.call(
        "record_ingest_result",
        p_file_id=file_id,
        p_text=done["text_content"],
        p_metadata=reused,
        # What the bytes are: the original's finding, which its metadata always holds.
        p_detected_type=reused.get("detected_type"),
        p_size_bytes=size,
        p_sha256=metadata["sha256"],
    )
    return {
        "file_id": file_id,
        "duplicate_of": original,
        "chunks": copied[0]["value"] if copied else 0,
    }
