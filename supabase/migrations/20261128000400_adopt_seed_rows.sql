-- Upgrading a project that followed the seed runbook: the rows of the tables set aside by
-- jobqueue_set_aside() (public.jobs_before_jobqueue, public.ingest_files_before_jobqueue) are
-- copied into this project's tables, every one of them, with its status; unfinished work is
-- queued again and gets processed. The tables set aside are kept, untouched and out of the API
-- roles' reach, until the operator drops them (docs/upgrading.md).
--
-- The seed's shape is not fixed, so each column is read only when it exists, by name:
--   jobs:          id (uuid or bigint), type, status, input (or payload), output (or result),
--                  error, attempts, max_attempts, priority, run_at, created_at, updated_at
--   ingest_files:  id (uuid or bigint), bucket, path, status, content_type (or mime_type),
--                  size_bytes (or size), error, created_at, updated_at
-- Job statuses: queued, pending, new, processing, running, in_progress -> queued; done,
-- completed, succeeded, success -> done; failed, error -> failed; cancelled, canceled ->
-- cancelled; anything else -> queued. File statuses: processed, done, completed -> processed;
-- failed, error -> failed; anything else -> pending. A file id that is not a uuid gets a new
-- one, and every job input's file_id that named it is rewritten to match.
--
-- Idempotent: a row copied once is never copied again (the copies are remembered in
-- public.jobqueue_adopted), so applying the migrations again changes nothing.

set lock_timeout = '10s';
set statement_timeout = '30min';

create table if not exists public.jobqueue_adopted (
  source text not null,
  old_id text not null,
  new_id text not null,
  primary key (source, old_id)
);
alter table public.jobqueue_adopted enable row level security;
revoke all on public.jobqueue_adopted from anon, authenticated;

create or replace function public.jobqueue_column(p_table regclass, p_names text[])
returns text
language sql
stable
set search_path = ''
as $$
  -- The first of p_names that p_table has, quoted; null when it has none.
  select quote_ident(n.name)
  from unnest(p_names) with ordinality as n(name, place)
  join pg_catalog.pg_attribute a
    on a.attrelid = p_table and a.attname = n.name and not a.attisdropped
  order by n.place
  limit 1;
$$;

create or replace function public.jobqueue_adopt_seed_rows()
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_files regclass := to_regclass('public.ingest_files_before_jobqueue');
  v_jobs regclass := to_regclass('public.jobs_before_jobqueue');
  v_col text;
  v_sql text;
  v_files_copied integer := 0;
  v_jobs_copied integer := 0;
  v_enqueued integer := 0;
  v_trigger_was_enabled boolean;
begin
  if v_files is not null then
    -- Files first: job inputs name them. Our insert trigger would queue a second job for each
    -- file (the seed's own job is copied below), so it is off while the rows come in.
    select t.tgenabled <> 'D' into v_trigger_was_enabled
    from pg_catalog.pg_trigger t
    where t.tgrelid = 'public.ingest_files'::regclass and t.tgname = 'ingest_files_enqueue_job';
    alter table public.ingest_files disable trigger ingest_files_enqueue_job;
    v_sql := format(
      'with src as (
         select s.id::text as old_id,
                case when s.id::text ~* ''^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$''
                     then s.id::text::uuid else gen_random_uuid() end as new_id,
                %s as bucket, %s as path, lower(coalesce(%s::text, '''')) as status,
                %s as content_type, %s as size_bytes, %s as error,
                %s as created_at, %s as updated_at
         from %s s
         where not exists (select from public.jobqueue_adopted a
                           where a.source = ''ingest_files'' and a.old_id = s.id::text)
       ),
       copied as (
         insert into public.ingest_files
           (id, bucket, path, status, content_type, size_bytes, error, created_at, updated_at)
         select new_id, coalesce(bucket, ''uploads''), coalesce(path, old_id),
                case when status in (''processed'', ''done'', ''completed'') then ''processed''
                     when status in (''failed'', ''error'') then ''failed''
                     else ''pending'' end,
                content_type, size_bytes, error,
                coalesce(created_at, now()), coalesce(updated_at, created_at, now())
         from src
         returning id
       ),
       remembered as (
         insert into public.jobqueue_adopted (source, old_id, new_id)
         select ''ingest_files'', old_id, new_id::text from src
       )
       select count(*) from copied',
      coalesce(public.jobqueue_column(v_files, array['bucket', 'bucket_id']), 'null::text'),
      coalesce(public.jobqueue_column(v_files, array['path', 'storage_path', 'name']),
               'null::text'),
      coalesce(public.jobqueue_column(v_files, array['status']), 'null::text'),
      coalesce(public.jobqueue_column(v_files, array['content_type', 'mime_type']) || '::text',
               'null::text'),
      coalesce(public.jobqueue_column(v_files, array['size_bytes', 'size']) || '::bigint',
               'null::bigint'),
      coalesce(public.jobqueue_column(v_files, array['error', 'error_message']) || '::text',
               'null::text'),
      coalesce(public.jobqueue_column(v_files, array['created_at']) || '::timestamptz',
               'null::timestamptz'),
      coalesce(public.jobqueue_column(v_files, array['updated_at']) || '::timestamptz',
               'null::timestamptz'),
      v_files);
    execute v_sql into v_files_copied;
    if coalesce(v_trigger_was_enabled, true) then
      alter table public.ingest_files enable trigger ingest_files_enqueue_job;
    end if;
  end if;

  if v_jobs is not null then
    -- Numeric seed ids are kept where free; the identity moves past them first, so the new
    -- ids it hands out never collide with a kept one.
    execute format(
      'select setval(pg_catalog.pg_get_serial_sequence(''public.jobs'', ''id''),
                     greatest((select max(id) from public.jobs),
                              (select max(s.id::text::bigint) from %s s
                               where s.id::text ~ ''^[0-9]{1,18}$''), 1))', v_jobs);
    v_col := coalesce(public.jobqueue_column(v_jobs, array['input', 'payload', 'data']),
                      'null::jsonb');
    v_sql := format(
      'with src as materialized (
         select s.id::text as old_id,
                coalesce(%s::text, ''unknown'') as type,
                lower(coalesce(%s::text, ''queued'')) as status,
                case when %s is null then ''{}''::jsonb else to_jsonb(%s) end as raw_input,
                %s as output, %s as error, %s as attempts, %s as max_attempts,
                %s as priority, %s as run_at, %s as created_at, %s as updated_at
         from %s s
         where not exists (select from public.jobqueue_adopted a
                           where a.source = ''jobs'' and a.old_id = s.id::text)
       ),
       shaped as materialized (
         select src.*,
                -- JSON stored as text becomes jsonb.
                case when jsonb_typeof(raw_input) = ''string''
                          and left(ltrim(raw_input #>> ''{}''), 1) in (''{'', ''['')
                     then (raw_input #>> ''{}'')::jsonb else raw_input end as input,
                case when status in (''done'', ''completed'', ''succeeded'', ''success'')
                       then ''done''
                     when status in (''failed'', ''error'') then ''failed''
                     when status in (''cancelled'', ''canceled'') then ''cancelled''
                     else ''queued'' end as new_status,
                coalesce(
                  case when old_id ~ ''^[0-9]{1,18}$'' and not exists (
                         select from public.jobs j where j.id = old_id::bigint)
                       then old_id::bigint end,
                  nextval(pg_catalog.pg_get_serial_sequence(''public.jobs'', ''id''))) as new_id
         from src
       ),
       keyed as materialized (
         -- A file that was given a new id is followed by every job input that named it.
         select shaped.*,
                case when jsonb_typeof(input) = ''object'' and a.new_id is not null
                     then jsonb_set(input, ''{file_id}'', to_jsonb(a.new_id))
                     else input end as new_input
         from shaped
         left join public.jobqueue_adopted a
           on a.source = ''ingest_files'' and jsonb_typeof(shaped.input) = ''object''
          and a.old_id = shaped.input ->> ''file_id''
       ),
       copied as (
         insert into public.jobs (id, type, status, input, output, error, attempts,
                                  max_attempts, priority, run_at, finished_at, created_at,
                                  updated_at)
         select new_id, type, new_status, coalesce(new_input, ''{}''::jsonb),
                case when new_status = ''done'' then output end,
                error,
                greatest(coalesce(attempts, 0), 0),
                -- Unfinished work gets a full set of attempts from here on.
                greatest(coalesce(max_attempts, 5),
                         greatest(coalesce(attempts, 0), 0)
                         + case when new_status = ''queued'' then 5 else 0 end, 1),
                coalesce(priority, 0),
                case when new_status = ''queued'' then now()
                     else coalesce(run_at, created_at, now()) end,
                case when new_status in (''done'', ''failed'', ''cancelled'')
                     then coalesce(updated_at, created_at, now()) end,
                coalesce(created_at, now()), coalesce(updated_at, created_at, now())
         from keyed
         returning id
       ),
       remembered as (
         insert into public.jobqueue_adopted (source, old_id, new_id)
         select ''jobs'', old_id, new_id::text from keyed
       )
       select count(*) from copied',
      coalesce(public.jobqueue_column(v_jobs, array['type', 'job_type', 'name']), 'null::text'),
      coalesce(public.jobqueue_column(v_jobs, array['status', 'state']), 'null::text'),
      v_col, v_col,
      coalesce(public.jobqueue_column(v_jobs, array['output', 'result']) || '::jsonb',
               'null::jsonb'),
      coalesce(public.jobqueue_column(v_jobs, array['error', 'error_message', 'last_error'])
               || '::text', 'null::text'),
      coalesce(public.jobqueue_column(v_jobs, array['attempts', 'attempt', 'retry_count'])
               || '::integer', 'null::integer'),
      coalesce(public.jobqueue_column(v_jobs, array['max_attempts', 'max_retries'])
               || '::integer', 'null::integer'),
      coalesce(public.jobqueue_column(v_jobs, array['priority']) || '::integer',
               'null::integer'),
      coalesce(public.jobqueue_column(v_jobs, array['run_at', 'scheduled_at', 'available_at'])
               || '::timestamptz', 'null::timestamptz'),
      coalesce(public.jobqueue_column(v_jobs, array['created_at']) || '::timestamptz',
               'null::timestamptz'),
      coalesce(public.jobqueue_column(v_jobs, array['updated_at', 'completed_at'])
               || '::timestamptz', 'null::timestamptz'),
      v_jobs);
    execute v_sql into v_jobs_copied;
  end if;

  if v_files is not null then
    -- A pending file whose work was never queued (or whose job was lost) gets its job now.
    with orphans as (
      select f.id from public.ingest_files f
      join public.jobqueue_adopted a on a.source = 'ingest_files' and a.new_id = f.id::text
      where f.status = 'pending'
        and not exists (select from public.jobs j
                        where j.status in ('queued', 'running')
                          and j.input ->> 'file_id' = f.id::text)
    )
    select count(public.enqueue_job('ingest_file', jsonb_build_object('file_id', o.id),
                                    p_dedupe_key => 'ingest_file:' || o.id::text))
    into v_enqueued
    from orphans o;
  end if;
  return format('%s files and %s jobs adopted, %s jobs queued for files left without one',
                v_files_copied, v_jobs_copied, v_enqueued);
end
$$;

select public.jobqueue_adopt_seed_rows();

select public.job_queue_restrict_functions(array['jobqueue_column', 'jobqueue_adopt_seed_rows']);
