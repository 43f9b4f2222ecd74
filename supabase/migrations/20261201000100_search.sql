-- Search over the chunks (issue 20; CONTRACT "Search"), and progress a client can watch.
--
-- pgvector is enabled where the server offers it, in schema extensions as on Supabase (with
-- search_path = '' every use is schema-qualified); file_chunks.embedding becomes a pgvector
-- vector (of any dimension: models differ). Each chunk records the model that embedded it and
-- its dimension, and a file embedded with one model is never compared with another's vectors.
-- Each (model, dimension) gets its own HNSW index (cosine), an expression index cast to that
-- dimension and partial on that model, as pgvector documents for mixed dimensions; it is made
-- the first time chunks of that model arrive. match_file_chunks() searches through it.
-- Without pgvector, embedding stays real[] and search is exact (no index can help there).

set lock_timeout = '10s';
set statement_timeout = '30min';

-- An operator who wants no pgvector says so before migrating:
--   alter database <db> set jobqueue.pgvector = 'off';
do $$
begin
  if exists (select from pg_catalog.pg_available_extensions where name = 'vector')
     and not exists (select from pg_catalog.pg_extension where extname = 'vector')
     and coalesce(current_setting('jobqueue.pgvector', true), 'on') <> 'off' then
    begin
      create schema if not exists extensions;
      create extension if not exists vector with schema extensions;
    exception when others then
      raise notice 'pgvector not enabled in this database (%): search is exact, on real[]',
        sqlerrm;
    end;
  end if;
end
$$;

-- The search runs as its caller (service_role), who needs pgvector's types and operators, as
-- Supabase grants them on its own extensions schema.
do $$
begin
  if to_regnamespace('extensions') is not null then
    grant usage on schema extensions to service_role;
  end if;
end
$$;

alter table public.file_chunks add column if not exists embedding_model text;
alter table public.file_chunks add column if not exists embedding_dims integer
  check (embedding_dims >= 1);
comment on column public.file_chunks.embedding_model is
  'The model that embedded this chunk (null until embedded); search compares one model only.';

-- The search's type: pgvector's vector where the extension is installed, else real[].
create or replace function public.chunk_embedding_type()
returns text
language sql
stable
set search_path = ''
as $$
  select case when exists (select from pg_catalog.pg_extension where extname = 'vector')
              then (select n.nspname || '.vector' from pg_catalog.pg_type t
                    join pg_catalog.pg_namespace n on n.oid = t.typnamespace
                    where t.typname = 'vector' limit 1)
              else 'real[]' end;
$$;

-- A real[] column from before pgvector was enabled becomes a vector column.
do $$
declare
  v_type text := public.chunk_embedding_type();
begin
  if v_type <> 'real[]' and (
       select format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute a
       where a.attrelid = 'public.file_chunks'::regclass and a.attname = 'embedding') = 'real[]'
  then
    execute format('alter table public.file_chunks alter column embedding type %s'
                   ' using embedding::%s', v_type, v_type);
  end if;
end
$$;

update public.file_chunks
set embedding_dims = coalesce(embedding_dims, cardinality(embedding::real[]))
where embedding is not null and embedding_dims is null;

create index if not exists file_chunks_model_idx on public.file_chunks (embedding_model)
  where embedding_model is not null;
-- "The model of the most recently embedded chunk", without reading every chunk.
create index if not exists file_chunks_embedded_at_idx on public.file_chunks (created_at)
  where embedding_model is not null;

-- The HNSW index for one model and dimension, made once (pgvector).
create or replace function public.ensure_chunk_index(p_model text, p_dims integer)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_type text := public.chunk_embedding_type();
  v_name text := 'file_chunks_hnsw_' || left(md5(p_model), 12) || '_' || p_dims;
begin
  if v_type = 'real[]' or p_dims is null or p_dims > 2000 then
    return null;  -- no pgvector, or beyond what an HNSW index of vector takes
  end if;
  if to_regclass('public.' || v_name) is null then
    execute format(
      'create index if not exists %I on public.file_chunks using hnsw'
      ' ((embedding::%s(%s)) %s.vector_cosine_ops) where embedding_model = %L'
      ' and embedding_dims = %s',
      v_name, v_type, p_dims, split_part(v_type, '.', 1), p_model, p_dims);
  end if;
  return v_name;
end
$$;

-- As before, and each chunk's "model" and its vector's dimension are recorded; the first
-- chunks of a (model, dimension) create its index.
create or replace function public.add_file_chunks(p_file_id uuid, p_chunks jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_type text := public.chunk_embedding_type();
  v_count bigint;
  v_pair record;
begin
  execute format(
    'insert into public.file_chunks
       (file_id, chunk_index, content, start_char, embedding, embedding_model, embedding_dims)
     select $1, (c ->> ''index'')::integer, c ->> ''content'', (c ->> ''start'')::bigint,
            case when c ? ''embedding'' then %s end,
            case when c ? ''embedding'' then c ->> ''model'' end,
            case when c ? ''embedding'' then jsonb_array_length(c -> ''embedding'') end
     from jsonb_array_elements($2) c
     on conflict (file_id, chunk_index) do update
       set content = excluded.content, start_char = excluded.start_char,
           embedding = excluded.embedding, embedding_model = excluded.embedding_model,
           embedding_dims = excluded.embedding_dims',
    case when v_type = 'real[]'
      then 'array(select e::real from jsonb_array_elements_text(c -> ''embedding'') e)'
      else '(c ->> ''embedding'')::' || v_type end)
    using p_file_id, p_chunks;
  get diagnostics v_count = row_count;
  for v_pair in
    select distinct c ->> 'model' as model, jsonb_array_length(c -> 'embedding') as dims
    from jsonb_array_elements(p_chunks) c
    where c ? 'embedding' and c ->> 'model' is not null
  loop
    perform public.ensure_chunk_index(v_pair.model, v_pair.dims);
  end loop;
  return v_count;
end
$$;

create or replace function public.copy_file_chunks(p_from uuid, p_to uuid)
returns bigint
language sql
security definer
set search_path = ''
as $$
  with gone as (delete from public.file_chunks c where c.file_id = p_to),
  copied as (
    insert into public.file_chunks
      (file_id, chunk_index, content, start_char, embedding, embedding_model, embedding_dims)
    select p_to, c.chunk_index, c.content, c.start_char, c.embedding, c.embedding_model,
           c.embedding_dims
    from public.file_chunks c where c.file_id = p_from
    on conflict (file_id, chunk_index) do update
      set content = excluded.content, start_char = excluded.start_char,
          embedding = excluded.embedding, embedding_model = excluded.embedding_model,
          embedding_dims = excluded.embedding_dims
    returning 1
  )
  select count(*) from copied;
$$;

-- The search, created with the embedding's type as its argument's type (vector or real[]):
--   match_file_chunks(p_query_embedding, p_match_count default 10, p_model default null,
--                     p_filter jsonb default '{}')
-- returns the p_match_count chunks most similar to the query by cosine similarity (1 is
-- identical), of chunks embedded with p_model (null: the model of the most recently embedded
-- chunk), in files of p_filter's bucket / path_prefix / owner when given. SECURITY INVOKER:
-- anon and authenticated may not execute it (nor read the chunks) unless the operator grants
-- them, with row-level policies on file_chunks and ingest_files (docs/search.md).
do $$
declare
  v_type text := public.chunk_embedding_type();
  v_vector boolean := v_type <> 'real[]';
begin
  execute format($f$
    create or replace function public.match_file_chunks(
      p_query_embedding %1$s,
      p_match_count integer default 10,
      p_model text default null,
      p_filter jsonb default '{}'::jsonb
    )
    returns table (file_id uuid, chunk_index integer, content text,
                   similarity double precision)
    language plpgsql
    stable
    set search_path = ''
    as $body$
    declare
      v_model text := p_model;
      v_dims integer;
      v_query_dims integer;
      v_bucket text;
      v_prefix text;
      v_owner text;
      v_unknown text;
    begin
      if p_match_count is null or p_match_count < 1 or p_match_count > 1000 then
        raise exception 'p_match_count must be from 1 to 1000, not %%', p_match_count;
      end if;
      if p_query_embedding is null then
        raise exception 'p_query_embedding must be a vector of numbers, not null';
      end if;
      if p_filter is null or jsonb_typeof(p_filter) <> 'object' then
        raise exception 'p_filter must be a JSON object such as {"bucket": "uploads"}';
      end if;
      select string_agg(k, ', ') into v_unknown
      from jsonb_object_keys(p_filter) k where k not in ('bucket', 'path_prefix', 'owner');
      if v_unknown is not null then
        raise exception 'p_filter has unknown keys (%%): it takes bucket, path_prefix, owner',
          v_unknown;
      end if;
      if exists (select from jsonb_each(p_filter) e where jsonb_typeof(e.value) <> 'string') then
        raise exception 'p_filter''s bucket, path_prefix and owner must be strings';
      end if;
      v_bucket := p_filter ->> 'bucket';
      v_prefix := p_filter ->> 'path_prefix';
      v_owner := p_filter ->> 'owner';
      if v_model is null then
        select c.embedding_model into v_model from public.file_chunks c
        where c.embedding_model is not null
        order by c.created_at desc limit 1;
        if v_model is null then
          return;  -- nothing is embedded yet
        end if;
      end if;
      select c.embedding_dims into v_dims from public.file_chunks c
      where c.embedding_model = v_model limit 1;
      if v_dims is null then
        raise exception 'no chunk is embedded with model %%', v_model
          using hint = 'select distinct embedding_model from file_chunks; lists the models';
      end if;
      v_query_dims := %2$s;
      if v_query_dims <> v_dims then
        raise exception 'the query vector has %% dimensions; model %% has %%',
          v_query_dims, v_model, v_dims;
      end if;
      if %3$L then
        -- Filters are applied while the index is walked, not after (pgvector 0.8).
        perform set_config('hnsw.iterative_scan', 'relaxed_order', true);
        perform set_config('hnsw.ef_search', greatest(40, p_match_count * 2)::text, true);
      end if;
      return query execute format(
        'select c.file_id, c.chunk_index, c.content,
                (1 - (%%4$s operator(%%6$s) $1::%%5$s))::double precision as similarity
         from public.file_chunks c
         where c.embedding_model = %%1$L and c.embedding_dims = %%2$s
           and ($3::text is null and $4::text is null and $5::text is null
                or exists (select from public.ingest_files f
                           where f.id = c.file_id
                             and ($3::text is null or f.bucket = $3)
                             and ($4::text is null or starts_with(f.path, $4))
                             and ($5::text is null or f.owner = $5)))
         order by %%4$s operator(%%6$s) $1::%%5$s
         limit $2',
        v_model, v_dims, null,
        case when %3$L then 'c.embedding::%4$s(' || v_dims || ')' else 'c.embedding' end,
        case when %3$L then '%4$s(' || v_dims || ')' else 'real[]' end,
        %5$L)
      using p_query_embedding, p_match_count, v_bucket, v_prefix, v_owner;
    end
    $body$;
  $f$,
    v_type,
    case when v_vector then format('%s_dims(p_query_embedding)', split_part(v_type, '.', 1) || '.vector')
         else 'cardinality(p_query_embedding)' end,
    v_vector,
    v_type,
    case when v_vector then split_part(v_type, '.', 1) || '.<=>' else 'public.<=>' end);
end
$$;

-- Without pgvector there is no <=> on real[]: cosine distance, exact, in SQL.
do $$
begin
  if public.chunk_embedding_type() = 'real[]' then
    create or replace function public.real_cosine_distance(a real[], b real[])
    returns double precision
    language sql
    immutable
    set search_path = ''
    as $f$
      select 1 - sum(x * y) / nullif(sqrt(sum(x * x)) * sqrt(sum(y * y)), 0)
      from unnest(a, b) as t(x, y);
    $f$;
    create operator public.<=> (leftarg = real[], rightarg = real[],
                                function = public.real_cosine_distance);
  end if;
exception when duplicate_function then
  null;  -- applied before
end
$$;

-- Progress a client can watch (Supabase Realtime on ingest_files): null before the job
-- starts; {"stage": downloading|extracting|chunking|embedding|done|failed, "done", "total"}.
alter table public.ingest_files add column if not exists progress jsonb;

create or replace function public.set_ingest_progress(
  p_file_id uuid, p_stage text, p_done bigint default 0, p_total bigint default null
)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.ingest_files
  set progress = jsonb_build_object('stage', p_stage, 'done', coalesce(p_done, 0),
                                    'total', p_total),
      updated_at = now()
  where id = p_file_id;
$$;

-- The last word on progress follows the file's status, however its job ended (a timeout, a
-- lease lost, attempts exhausted, the handler's own success).
create or replace function public.ingest_files_final_progress()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status in ('processed', 'failed') and new.status is distinct from old.status then
    new.progress := jsonb_build_object(
      'stage', case new.status when 'processed' then 'done' else 'failed' end,
      'done', coalesce((old.progress ->> 'done')::bigint, 0),
      'total', old.progress -> 'total');
  end if;
  return new;
end
$$;

drop trigger if exists ingest_files_final_progress on public.ingest_files;
create trigger ingest_files_final_progress
  before update of status on public.ingest_files
  for each row execute function public.ingest_files_final_progress();

select public.job_queue_restrict_functions(array[
  'chunk_embedding_type', 'ensure_chunk_index', 'add_file_chunks', 'copy_file_chunks',
  'match_file_chunks', 'real_cosine_distance', 'set_ingest_progress',
  'ingest_files_final_progress'
]);
