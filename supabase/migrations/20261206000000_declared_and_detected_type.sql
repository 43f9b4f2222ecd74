-- One name per idea (issue 17): ingest_files.content_type is the type the uploader declared
-- (the app's insert, or Storage's mimetype), and stays so; what the worker found in the bytes
-- goes to the new detected_type. Until now mark_ingest_file_processed overwrote content_type
-- with the detected type, so a row said one thing before processing and another after.
--
-- Rows processed before this migration keep the detected type in content_type (what was
-- declared was not kept apart); their detected_type is filled from metadata.detected_type.

set lock_timeout = '10s';
set statement_timeout = '5min';

alter table public.ingest_files add column if not exists detected_type text;
comment on column public.ingest_files.content_type is
  'the type the uploader declared (null: none); never overwritten by processing';
comment on column public.ingest_files.detected_type is
  'the type ingest_file detected from the bytes (null until processed)';

update public.ingest_files
set detected_type = metadata ->> 'detected_type'
where detected_type is null and metadata ? 'detected_type';

-- What ingest_file records when a file is processed, under names that say what each is.
create or replace function public.record_ingest_result(
  p_file_id uuid,
  p_text text,
  p_metadata jsonb,
  p_detected_type text,
  p_size_bytes bigint,
  p_sha256 text
)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with updated as (
    update public.ingest_files
    set status = 'processed', text_content = p_text, metadata = coalesce(p_metadata, '{}'),
        detected_type = coalesce(p_detected_type, detected_type),
        size_bytes = coalesce(p_size_bytes, size_bytes), sha256 = coalesce(p_sha256, sha256),
        error = null, processed_at = now(), updated_at = now()
    where id = p_file_id
    returning 1
  )
  select exists (select from updated);
$$;

-- Kept, with its signature, for a worker deployed before this migration: its p_content_type
-- was always the detected type, and is now recorded as such.
create or replace function public.mark_ingest_file_processed(
  p_file_id uuid,
  p_text text,
  p_metadata jsonb,
  p_content_type text default null,
  p_size_bytes bigint default null,
  p_sha256 text default null
)
returns boolean
language sql
security definer
set search_path = ''
as $$
  select public.record_ingest_result(
    p_file_id, p_text, p_metadata, p_content_type, p_size_bytes, p_sha256
  );
$$;

select public.job_queue_restrict_functions(array[
  'record_ingest_result', 'mark_ingest_file_processed'
]);
