-- The ingest domain, a plug-in of the queue: uploaded files, their text and chunks, and the
-- triggers that turn an upload into an ingest_file job. The queue (the previous migrations)
-- knows nothing of files; this file only calls its public API (enqueue_job) and reacts to job
-- status changes.
--
-- File states follow their job: pending (queued), processing (running), processed (done),
-- failed (failed or cancelled).

-- Bounded waits: never queue long behind another session's lock, never run unbounded.
set lock_timeout = '10s';
set statement_timeout = '5min';

-- A seed-runbook ingest_files table is set aside first; 000400 copies its rows back.
select public.jobqueue_set_aside('ingest_files', 'text_content');

create table if not exists public.ingest_files (
  id uuid primary key default gen_random_uuid(),
  bucket text not null,
  path text not null,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'processed', 'failed')),
  content_type text,
  size_bytes bigint,
  metadata jsonb not null default '{}'::jsonb,
  text_content text,
  error text,
  processed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.ingest_files add column if not exists sha256 text;
comment on column public.ingest_files.metadata is
  'size_bytes, sha256, detected_type, pages (PDF), characters, words, chunks; unsupported: why';
create index if not exists ingest_files_sha256_idx on public.ingest_files (sha256)
  where status = 'processed';

-- Overlapping pieces of a file's text, for search; a re-run replaces them, never duplicates.
create table if not exists public.file_chunks (
  file_id uuid not null references public.ingest_files (id) on delete cascade,
  chunk_index integer not null check (chunk_index >= 0),
  content text not null,
  start_char bigint not null,
  created_at timestamptz not null default now(),
  primary key (file_id, chunk_index)
);
-- The embedding: pgvector's vector where the extension is installed, else real[].
do $$
begin
  if not exists (select from pg_catalog.pg_attribute
                 where attrelid = 'public.file_chunks'::regclass and attname = 'embedding'
                   and not attisdropped) then
    if exists (select from pg_catalog.pg_extension where extname = 'vector') then
      execute 'alter table public.file_chunks add column embedding vector';
    else
      execute 'alter table public.file_chunks add column embedding real[]';
    end if;
  end if;
end
$$;

-- The Storage buckets whose uploads are ingested (Supabase: the storage.objects trigger).
create table if not exists public.ingest_buckets (
  bucket text primary key
);
insert into public.ingest_buckets (bucket) values ('uploads') on conflict do nothing;

alter table public.ingest_files enable row level security;
alter table public.file_chunks enable row level security;
alter table public.ingest_buckets enable row level security;
drop policy if exists ingest_files_service_role_all on public.ingest_files;
create policy ingest_files_service_role_all on public.ingest_files
  for all to service_role using (true) with check (true);
drop policy if exists file_chunks_service_role_all on public.file_chunks;
create policy file_chunks_service_role_all on public.file_chunks
  for all to service_role using (true) with check (true);
drop policy if exists ingest_buckets_service_role_all on public.ingest_buckets;
create policy ingest_buckets_service_role_all on public.ingest_buckets
  for all to service_role using (true) with check (true);
-- Supabase's default privileges grant the API roles everything on new tables: take it back.
revoke all on public.ingest_files, public.file_chunks, public.ingest_buckets
  from anon, authenticated;
grant select, insert, update, delete on public.ingest_files, public.file_chunks,
  public.ingest_buckets to service_role;

-- Every upload becomes exactly one ingest_file job, in the uploader's transaction. SECURITY
-- DEFINER so that a client allowed to insert ingest_files needs no rights on jobs.
create or replace function public.ingest_files_enqueue_job()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform public.enqueue_job('ingest_file', jsonb_build_object('file_id', new.id),
                             p_dedupe_key => 'ingest_file:' || new.id::text);
  return null;
end
$$;

drop trigger if exists ingest_files_enqueue_job on public.ingest_files;
create trigger ingest_files_enqueue_job
  after insert on public.ingest_files
  for each row execute function public.ingest_files_enqueue_job();

-- The file follows its job's status.
create or replace function public.jobs_sync_ingest_file_status()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_file_id uuid;
begin
  -- Cast once, so the update below is a primary-key lookup (comparing id::text would read
  -- every row); input that names no valid file id touches nothing.
  begin
    v_file_id := (new.input ->> 'file_id')::uuid;
  exception when invalid_text_representation then
    v_file_id := null;
  end;
  if v_file_id is not null then
    update public.ingest_files f
    set status = case new.status
          when 'running' then 'processing'
          when 'queued' then 'pending'
          when 'done' then 'processed'
          else 'failed'
        end,
        error = case when new.status in ('failed', 'cancelled') then
          coalesce(new.error, 'job ' || new.status) end,
        updated_at = now()
    where f.id = v_file_id
      and f.status is distinct from 'processed';
  end if;
  return null;
end
$$;

drop trigger if exists jobs_sync_ingest_file_status on public.jobs;
create trigger jobs_sync_ingest_file_status
  after update of status on public.jobs
  for each row
  when (new.type = 'ingest_file' and new.status is distinct from old.status)
  execute function public.jobs_sync_ingest_file_status();

-- What the ingest_file handler reads and writes, callable over PostgREST as well as psycopg.
create or replace function public.get_ingest_file(p_file_id uuid)
returns table (
  id uuid, bucket text, path text, status text, content_type text, size_bytes bigint
)
language sql
stable
security definer
set search_path = ''
as $$
  select f.id, f.bucket, f.path, f.status, f.content_type, f.size_bytes
  from public.ingest_files f where f.id = p_file_id;
$$;

-- A processed file with the same bytes (sha256), other than this one: its work can be reused.
create or replace function public.find_processed_duplicate(p_file_id uuid, p_sha256 text)
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select f.id from public.ingest_files f
  where f.sha256 = p_sha256 and f.status = 'processed' and f.id <> p_file_id
  order by f.processed_at
  limit 1;
$$;

-- What a processed file holds, for a duplicate (same bytes) to reuse.
create or replace function public.get_ingest_file_result(p_file_id uuid)
returns table (text_content text, metadata jsonb, content_type text)
language sql
stable
security definer
set search_path = ''
as $$
  select f.text_content, f.metadata, f.content_type
  from public.ingest_files f where f.id = p_file_id and f.status = 'processed';
$$;

-- Starts a file's chunks afresh (a retry or re-run replaces them).
create or replace function public.clear_file_chunks(p_file_id uuid)
returns bigint
language sql
security definer
set search_path = ''
as $$
  with gone as (delete from public.file_chunks c where c.file_id = p_file_id returning 1)
  select count(*) from gone;
$$;

-- Adds a batch of chunks: [{"index", "content", "start", "embedding"?}, ...]. An index that is
-- already there is replaced, so sending a batch twice changes nothing.
create or replace function public.add_file_chunks(p_file_id uuid, p_chunks jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_type text;
  v_count bigint;
begin
  select format_type(a.atttypid, a.atttypmod) into v_type
  from pg_catalog.pg_attribute a
  where a.attrelid = 'public.file_chunks'::regclass and a.attname = 'embedding';
  execute format(
    'insert into public.file_chunks (file_id, chunk_index, content, start_char, embedding)
     select $1, (c ->> ''index'')::integer, c ->> ''content'', (c ->> ''start'')::bigint,
            case when c ? ''embedding'' then %s end
     from jsonb_array_elements($2) c
     on conflict (file_id, chunk_index) do update
       set content = excluded.content, start_char = excluded.start_char,
           embedding = excluded.embedding',
    case when v_type = 'real[]'
      then 'array(select e::real from jsonb_array_elements_text(c -> ''embedding'') e)'
      else '(c ->> ''embedding'')::' || v_type end)
    using p_file_id, p_chunks;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

-- Copies a duplicate's chunks (embeddings included) to a file with the same bytes.
create or replace function public.copy_file_chunks(p_from uuid, p_to uuid)
returns bigint
language sql
security definer
set search_path = ''
as $$
  with gone as (delete from public.file_chunks c where c.file_id = p_to),
  copied as (
    insert into public.file_chunks (file_id, chunk_index, content, start_char, embedding)
    select p_to, c.chunk_index, c.content, c.start_char, c.embedding
    from public.file_chunks c where c.file_id = p_from
    on conflict (file_id, chunk_index) do update
      set content = excluded.content, start_char = excluded.start_char,
          embedding = excluded.embedding
    returning 1
  )
  select count(*) from copied;
$$;

-- It gained p_sha256: the old signature goes, or calls would be ambiguous.
-- squawk-ignore ban-drop-function
drop function if exists public.mark_ingest_file_processed(uuid, text, jsonb, text, bigint);
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
  with updated as (
    update public.ingest_files
    set status = 'processed', text_content = p_text, metadata = coalesce(p_metadata, '{}'),
        content_type = coalesce(p_content_type, content_type),
        size_bytes = coalesce(p_size_bytes, size_bytes), sha256 = coalesce(p_sha256, sha256),
        error = null, processed_at = now(), updated_at = now()
    where id = p_file_id
    returning 1
  )
  select exists (select from updated);
$$;

-- Supabase: an upload to a configured bucket (public.ingest_buckets) is all a user does. The
-- trigger on storage.objects inserts the ingest_files row; without a storage schema (plain
-- PostgreSQL) nothing is installed, and calling this later installs it.
create or replace function public.ingest_storage_object()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select from public.ingest_buckets b where b.bucket = new.bucket_id)
     and new.name is not null and right(new.name, 1) <> '/' then
    insert into public.ingest_files (bucket, path, content_type, size_bytes)
    values (new.bucket_id, new.name, new.metadata ->> 'mimetype',
            nullif(new.metadata ->> 'size', '')::bigint);
  end if;
  return null;
end
$$;

create or replace function public.install_ingest_storage_trigger()
returns text
language plpgsql
security definer
set search_path = ''
as $$
begin
  if to_regclass('storage.objects') is null then
    return 'no storage.objects here: uploads are registered by inserting into ingest_files';
  end if;
  execute 'drop trigger if exists ingest_storage_object on storage.objects';
  execute 'create trigger ingest_storage_object after insert on storage.objects
           for each row execute function public.ingest_storage_object()';
  return 'uploads to the buckets in ingest_buckets now queue ingest_file jobs';
end
$$;

select public.install_ingest_storage_trigger();

select public.job_queue_restrict_functions(array[
  'ingest_files_enqueue_job', 'jobs_sync_ingest_file_status', 'get_ingest_file',
  'get_ingest_file_result',
  'find_processed_duplicate', 'clear_file_chunks', 'add_file_chunks', 'copy_file_chunks',
  'mark_ingest_file_processed', 'ingest_storage_object', 'install_ingest_storage_trigger'
]);
