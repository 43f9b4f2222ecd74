-- Limits, snoozes and fairness (issue 19; CONTRACT "Limits, snoozes and fairness").
--
-- Limits live in the database every worker already shares, so 4 or 40 serverless instances
-- never exceed a provider's budget together:
--   rate_limits          per key: requests and tokens per minute, running jobs at once, a pause
--   rate_limit_usage     what was started, per key and per second of the last minute
--   acquire_rate()       one atomic call: counts the request, or says when it could succeed
--   pause_rate_limit()   a 429 stops every instance until the provider's reset
-- The window is sliding, kept in one-second buckets: a bucket counts until 61 s after its
-- second began, so no 60 s window ever holds more than the budget (a bucket is dropped a
-- second late rather than early; the cost is at most 1/60 of the budget). A token bucket
-- would let up to twice the budget start within one minute (full bucket, then a refill).
--
-- Claiming respects them: a job whose concurrency_key is paused, or at its max_running, is
-- skipped (and blocks nothing behind it), and among jobs of one priority, groups (group_key)
-- take turns, so one tenant's backlog never delays another's single job.
--
-- A snooze gives a running job back until a time without spending an attempt.

set lock_timeout = '10s';
set statement_timeout = '5min';

alter table public.jobs add column if not exists concurrency_key text;
alter table public.jobs add column if not exists group_key text;
alter table public.jobs add column if not exists snoozes integer not null default 0;
comment on column public.jobs.concurrency_key is
  'A rate_limits key: while it is paused or has max_running running jobs, this job waits.';
comment on column public.jobs.group_key is
  'Jobs of one priority are claimed in turns across groups (a tenant, an uploader).';

-- Only queued jobs that carry a key: the claim checks this to take its plain path when none do.
create index if not exists jobs_keyed_queued_idx on public.jobs (id)
  where status = 'queued' and (group_key is not null or concurrency_key is not null);
-- One group's runnable jobs in claim order, for the turn-taking claim; the null group apart.
create index if not exists jobs_group_claim_idx on public.jobs (group_key, priority, run_at, id)
  where status = 'queued';
create index if not exists jobs_ungrouped_claim_idx on public.jobs (priority, run_at, id)
  where status = 'queued' and group_key is null;

-- When each group was last served, so turns rotate across claims too: a claim of one job
-- serves the group that waited longest. The null group is '' here (one group, as documented).
create table if not exists public.job_group_turns (
  group_key text primary key,
  served_at timestamptz not null
);
alter table public.job_group_turns enable row level security;
revoke all on public.job_group_turns from anon, authenticated;
grant select, insert, update, delete on public.job_group_turns to service_role;
-- Running jobs of a key, counted against its max_running.
create index if not exists jobs_concurrency_running_idx on public.jobs (concurrency_key)
  where status = 'running' and concurrency_key is not null;

create table if not exists public.rate_limits (
  key text primary key check (key <> ''),
  requests_per_minute integer check (requests_per_minute >= 1),
  tokens_per_minute integer check (tokens_per_minute >= 1),
  max_running integer check (max_running >= 1),
  paused_until timestamptz,
  updated_at timestamptz not null default now()
);

create table if not exists public.rate_limit_usage (
  key text not null references public.rate_limits (key) on delete cascade,
  second bigint not null,
  requests bigint not null default 0,
  tokens bigint not null default 0,
  primary key (key, second)
);

alter table public.rate_limits enable row level security;
alter table public.rate_limit_usage enable row level security;
drop policy if exists rate_limits_service_role_all on public.rate_limits;
create policy rate_limits_service_role_all on public.rate_limits
  for all to service_role using (true) with check (true);
drop policy if exists rate_limit_usage_service_role_all on public.rate_limit_usage;
create policy rate_limit_usage_service_role_all on public.rate_limit_usage
  for all to service_role using (true) with check (true);
revoke all on public.rate_limits, public.rate_limit_usage from anon, authenticated;
grant select, insert, update, delete on public.rate_limits, public.rate_limit_usage
  to service_role;

-- Creates or replaces a key's limits (null: no such limit); a limit below 1 is an error that
-- names the argument, and changes nothing.
create or replace function public.set_rate_limit(
  p_key text,
  p_requests_per_minute integer default null,
  p_tokens_per_minute integer default null,
  p_max_running integer default null
)
returns public.rate_limits
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row public.rate_limits;
begin
  if coalesce(p_key, '') = '' then
    raise exception 'p_key must not be empty';
  end if;
  if p_requests_per_minute < 1 then
    raise exception 'p_requests_per_minute must be at least 1 (or null for no limit), not %',
      p_requests_per_minute;
  end if;
  if p_tokens_per_minute < 1 then
    raise exception 'p_tokens_per_minute must be at least 1 (or null for no limit), not %',
      p_tokens_per_minute;
  end if;
  if p_max_running < 1 then
    raise exception 'p_max_running must be at least 1 (or null for no limit), not %',
      p_max_running;
  end if;
  insert into public.rate_limits as r
    (key, requests_per_minute, tokens_per_minute, max_running)
  values (p_key, p_requests_per_minute, p_tokens_per_minute, p_max_running)
  on conflict (key) do update
    set requests_per_minute = excluded.requests_per_minute,
        tokens_per_minute = excluded.tokens_per_minute,
        max_running = excluded.max_running,
        updated_at = now()
  returning * into v_row;
  return v_row;
end
$$;

-- Starts p_requests requests and p_tokens tokens under p_key's per-minute budget: null when
-- they were counted; otherwise nothing is counted and the earliest time the same call could
-- succeed is returned (the pause's end, or when enough of the last minute's usage expires).
-- A key with no row has no limits. Atomic across sessions: callers of one key queue on its row.
create or replace function public.acquire_rate(
  p_key text,
  p_requests integer default 1,
  p_tokens integer default 0
)
returns timestamptz
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_limit public.rate_limits;
  v_now timestamptz := clock_timestamp();
  v_second bigint := floor(extract(epoch from v_now))::bigint;
  v_requests bigint;
  v_tokens bigint;
  v_ready bigint := 0;
begin
  if coalesce(p_requests, 0) < 0 or coalesce(p_tokens, 0) < 0 then
    raise exception 'p_requests and p_tokens must not be negative';
  end if;
  select * into v_limit from public.rate_limits r where r.key = p_key for update;
  if not found then
    return null;
  end if;
  if v_limit.requests_per_minute < coalesce(p_requests, 0) then
    raise exception '% requests can never start under %: its whole minute allows %',
      p_requests, p_key, v_limit.requests_per_minute
      using hint = 'split the work, or raise the limit with set_rate_limit';
  end if;
  if v_limit.tokens_per_minute < coalesce(p_tokens, 0) then
    raise exception '% tokens can never start under %: its whole minute allows %',
      p_tokens, p_key, v_limit.tokens_per_minute
      using hint = 'split the work, or raise the limit with set_rate_limit';
  end if;
  if v_limit.paused_until > v_now then
    return v_limit.paused_until;
  end if;
  delete from public.rate_limit_usage u where u.key = p_key and u.second <= v_second - 61;
  select coalesce(sum(u.requests), 0), coalesce(sum(u.tokens), 0) into v_requests, v_tokens
  from public.rate_limit_usage u where u.key = p_key;
  if (v_limit.requests_per_minute is null
        or v_requests + coalesce(p_requests, 0) <= v_limit.requests_per_minute)
     and (v_limit.tokens_per_minute is null
        or v_tokens + coalesce(p_tokens, 0) <= v_limit.tokens_per_minute) then
    insert into public.rate_limit_usage as u (key, second, requests, tokens)
    values (p_key, v_second, coalesce(p_requests, 0), coalesce(p_tokens, 0))
    on conflict (key, second) do update
      set requests = u.requests + excluded.requests, tokens = u.tokens + excluded.tokens;
    return null;
  end if;
  -- The earliest second at which enough of the window has expired, for each budget spent.
  if v_limit.requests_per_minute is not null
     and v_requests + p_requests > v_limit.requests_per_minute then
    select b.second + 61 into v_ready
    from (select u.second, sum(u.requests) over (order by u.second) as freed
          from public.rate_limit_usage u where u.key = p_key) b
    where b.freed >= v_requests + p_requests - v_limit.requests_per_minute
    order by b.second limit 1;
  end if;
  if v_limit.tokens_per_minute is not null
     and v_tokens + p_tokens > v_limit.tokens_per_minute then
    select greatest(v_ready, b.second + 61) into v_ready
    from (select u.second, sum(u.tokens) over (order by u.second) as freed
          from public.rate_limit_usage u where u.key = p_key) b
    where b.freed >= v_tokens + p_tokens - v_limit.tokens_per_minute
    order by b.second limit 1;
  end if;
  return greatest(to_timestamp(v_ready), v_now);
end
$$;

-- Corrects the tokens counted by acquire_rate once the provider says what a call really used
-- (its usage.total_tokens): p_tokens more, or fewer when negative, in the current second.
create or replace function public.adjust_rate(p_key text, p_tokens integer)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into public.rate_limit_usage as u (key, second, requests, tokens)
  select r.key, floor(extract(epoch from clock_timestamp()))::bigint, 0, p_tokens
  from public.rate_limits r where r.key = p_key
  on conflict (key, second) do update set tokens = u.tokens + excluded.tokens;
$$;

-- Stops p_key for every instance until p_until (a 429's reset); a later call never moves the
-- end earlier. A key with no row gets one, with no limits but the pause.
create or replace function public.pause_rate_limit(p_key text, p_until timestamptz)
returns timestamptz
language sql
security definer
set search_path = ''
as $$
  insert into public.rate_limits as r (key, paused_until)
  values (p_key, p_until)
  on conflict (key) do update
    set paused_until = greatest(r.paused_until, excluded.paused_until), updated_at = now()
  returning r.paused_until;
$$;

create or replace function public.resume_rate_limit(p_key text)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.rate_limits set paused_until = null, updated_at = now() where key = p_key;
$$;

-- ---------------------------------------------------------------------------------------------
-- Claim
-- ---------------------------------------------------------------------------------------------

-- Keys whose jobs may not be claimed now, and how many more each may start: paused keys
-- (none), keys at max_running (none), keys below it (the difference). Keys without max_running
-- and not paused are not listed: unlimited.
create or replace function public.claimable_capacity()
returns table (key text, capacity integer)
language sql
stable
security definer
set search_path = ''
as $$
  select r.key,
         case when r.paused_until > now() then 0
              else greatest(r.max_running - (
                select count(*) from public.jobs j
                where j.status = 'running' and j.concurrency_key = r.key
                  and j.lease_expires_at > now()), 0)::integer
         end
  from public.rate_limits r
  where r.paused_until > now() or r.max_running is not null;
$$;

-- The one claim statement, as before (priority, then run_at, then id, skipping what others
-- hold; attempts is the fencing token), with two additions that cost nothing while no queued
-- job carries a key (one probe of jobs_keyed_queued_idx says so):
--   limits: a job whose concurrency_key is paused or at its max_running is skipped, never
--     blocking the jobs behind it, and one claim takes no more of a key than it has room for.
--     Claimers of limited keys queue on those keys' rate_limits rows, so two claims can never
--     both take a key's last free slot.
--   turns: the candidates are each group's first p_limit runnable jobs (found by skipping
--     through jobs_group_claim_idx, one probe per group, however many jobs a group holds),
--     ordered by priority, then their rank within their group, then run_at and id: a claim of
--     n jobs takes the groups' jobs in rounds; a null group_key is one group.
create or replace function public.claim_jobs(
  p_worker text,
  p_limit integer default 1,
  p_lease_seconds integer default 300,
  p_types text[] default null
)
returns table (
  id bigint,
  type text,
  input jsonb,
  attempts integer,
  max_attempts integer,
  lease_expires_at timestamptz
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_limit integer := greatest(coalesce(p_limit, 1), 0);
  v_ids bigint[];
  v_keyed boolean;
begin
  perform public.rescue_expired_jobs();

  v_keyed := exists (select from public.jobs k
                     where k.status = 'queued'
                       and (k.group_key is not null or k.concurrency_key is not null));
  if not v_keyed then
    -- The plain path: no job carries a key.
    select array(
      select c.id
      from public.jobs c
      where c.status = 'queued'
        and c.run_at <= now()
        and (p_types is null or c.type = any (p_types))
      order by c.priority, c.run_at, c.id
      limit v_limit
      for update skip locked
    ) into v_ids;
  else
    -- Claims of limited keys are serialised on those keys' rows (see above).
    perform 1 from public.rate_limits r
    where r.max_running is not null
    order by r.key
    for update;

    with recursive groups(g) as (
      (select c.group_key from public.jobs c
       where c.status = 'queued' and c.group_key is not null
       order by c.group_key limit 1)
      union all
      select (select c.group_key from public.jobs c
              where c.status = 'queued' and c.group_key > groups.g
              order by c.group_key limit 1)
      from groups where groups.g is not null
    ),
    capacity as (
      select * from public.claimable_capacity()
    ),
    runnable as (
      select c.*
      from groups g
      cross join lateral (
        select c.id, c.priority, c.run_at, c.concurrency_key, c.group_key
        from public.jobs c
        where c.status = 'queued' and c.group_key = g.g
          and c.run_at <= now()
          and (p_types is null or c.type = any (p_types))
          and (c.concurrency_key is null or not exists (
                 select from capacity k where k.key = c.concurrency_key and k.capacity = 0))
        order by c.priority, c.run_at, c.id
        limit v_limit
      ) c
      where g.g is not null
      union all
      (select c.id, c.priority, c.run_at, c.concurrency_key, c.group_key
       from public.jobs c
       where c.status = 'queued' and c.group_key is null
         and c.run_at <= now()
         and (p_types is null or c.type = any (p_types))
         and (c.concurrency_key is null or not exists (
                select from capacity k where k.key = c.concurrency_key and k.capacity = 0))
       order by c.priority, c.run_at, c.id
       limit v_limit)
    ),
    turns as (
      select r.*, row_number() over (partition by r.group_key, r.priority
                                     order by r.run_at, r.id) as turn
      from runnable r
    ),
    ordered as (
      select r.id, r.concurrency_key, r.group_key,
             row_number() over (order by r.priority, r.turn, t.served_at nulls first,
                                         r.run_at, r.id) as place
      from turns r
      left join public.job_group_turns t on t.group_key = coalesce(r.group_key, '')
    ),
    ranked as (
      select o.*, row_number() over (partition by o.concurrency_key order by o.place) as key_rank
      from ordered o
    ),
    allowed as (
      select r.id from ranked r
      left join capacity k on k.key = r.concurrency_key
      where k.key is null or r.key_rank <= k.capacity
      order by r.place
      limit v_limit
    )
    select array(
      select j.id from public.jobs j
      where j.id = any (array(select a.id from allowed a)) and j.status = 'queued'
      for update skip locked
    ) into v_ids;

    insert into public.job_group_turns as t (group_key, served_at)
    select g.key, clock_timestamp()
    from (select distinct coalesce(j.group_key, '') as key
          from public.jobs j where j.id = any (v_ids)) g
    on conflict (group_key) do update set served_at = excluded.served_at;
  end if;

  return query
  with claimed as (
    update public.jobs j
    set status = 'running',
        attempts = j.attempts + 1,
        locked_by = p_worker,
        lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
        -- With keys, the moment the claim really took the job (after its wait for the keys'
        -- rows), not the transaction's start: attempt times are what max_running is checked
        -- against. Without, the statement's time, shared by the whole batch.
        started_at = case when v_keyed then clock_timestamp() else now() end,
        updated_at = now()
    where j.id = any (v_ids)
    returning j.id, j.type, j.input, j.attempts, j.max_attempts, j.lease_expires_at,
              j.priority, j.run_at, j.group_key
  )
  select c.id, c.type, c.input, c.attempts, c.max_attempts, c.lease_expires_at
  from claimed c
  order by c.priority, c.run_at, c.id;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Snoozes
-- ---------------------------------------------------------------------------------------------

-- How many times one job may snooze before it fails for good (so a job can never snooze
-- forever): jobs.snoozes counts them.
create or replace function public.job_max_snoozes()
returns integer
language sql
immutable
set search_path = ''
as $$ select 1000 $$;

-- finish_jobs as before, plus one more kind of outcome:
--   snooze_ms        the attempt is not a failure: the job goes back to queued with run_at at
--                    the snooze's end, max_attempts grows by one (the claim still counted in
--                    attempts), the attempt is recorded as 'snoozed'; past job_max_snoozes()
--                    snoozes it fails for good, saying so.
create or replace function public.finish_jobs(p_outcomes jsonb, p_worker text default null)
returns table (
  id bigint,
  status text,
  attempts integer,
  run_at timestamptz,
  error text,
  accepted boolean
)
language sql
security definer
set search_path = ''
as $$
  with o as (
    select x.id, x.attempt, coalesce(x.ok, false) as ok, x.output, left(x.error, 8000) as error,
           coalesce(x.permanent, false) as permanent, x.retry_in_ms, x.snooze_ms
    from jsonb_to_recordset(p_outcomes)
      as x(id bigint, attempt integer, ok boolean, output jsonb, error text, permanent boolean,
           retry_in_ms bigint, snooze_ms bigint)
  ),
  decided as (
    select o.*, j.attempts as job_attempts, j.max_attempts as job_max, j.snoozes,
           case
             when o.ok then 'done'
             when o.snooze_ms is not null and not o.permanent
               then case when j.snoozes >= public.job_max_snoozes() then 'failed'
                         else 'snoozed' end
             when o.permanent or j.attempts >= j.max_attempts then 'failed'
             else 'queued'
           end as verdict
    from o
    join public.jobs j on j.id = o.id and j.status = 'running' and j.attempts = o.attempt
  ),
  updated as (
    update public.jobs j
    set status = case d.verdict when 'snoozed' then 'queued' else d.verdict end,
        output = case when d.ok then d.output else j.output end,
        error = case
          when d.ok then null
          when d.verdict = 'snoozed' then j.error
          when d.snooze_ms is not null and d.verdict = 'failed'
            then 'snoozed ' || j.snoozes || ' times (the most a job may): failed for good'
          else coalesce(d.error, 'failed without a message')
        end,
        run_at = case
          when d.verdict = 'snoozed'
            then now() + make_interval(secs => least(greatest(d.snooze_ms, 0), 2592000000) / 1000.0)
          when d.verdict in ('done', 'failed') then j.run_at
          when d.retry_in_ms is not null
            then now() + make_interval(secs => least(greatest(d.retry_in_ms, 0), 2592000000) / 1000.0)
          else now() + public.job_retry_delay(j.attempts)
        end,
        max_attempts = case when d.verdict = 'snoozed' then j.max_attempts + 1
                            else j.max_attempts end,
        snoozes = case when d.verdict = 'snoozed' then j.snoozes + 1 else j.snoozes end,
        finished_at = case when d.verdict in ('done', 'failed') then now() end,
        locked_by = null,
        lease_expires_at = null,
        updated_at = now()
    from decided d
    -- The id array makes every row a primary-key lookup, whatever the generic plan guesses.
    where j.id = any (array(select d2.id from decided d2)) and j.id = d.id
      and j.status = 'running' and j.attempts = d.attempt
    returning j.id, j.status, j.attempts, j.run_at, j.error, j.started_at, d.attempt, d.ok,
              d.verdict
  ),
  recorded as (
    insert into public.job_attempts (job_id, attempt, worker, outcome, error, started_at)
    select u.id, u.attempt, p_worker,
           case when u.ok then 'done' when u.verdict = 'snoozed' then 'snoozed'
                when u.status = 'failed' then 'failed' else 'retry' end,
           case when u.verdict = 'snoozed' then null else u.error end, u.started_at
    from updated u
  )
  select u.id, u.status, u.attempts, u.run_at, u.error, true
  from updated u
  union all
  select o.id, j.status, j.attempts, j.run_at,
         case when j.id is null then 'no such job'
              else 'refused: the job is no longer running at attempt ' || o.attempt end,
         false
  from o
  left join public.jobs j on j.id = o.id
  where o.id not in (select u.id from updated u);
$$;

-- psql-friendly: snooze a running job (the attempt a worker was given) for p_seconds.
create or replace function public.snooze_job(p_id bigint, p_attempt integer, p_seconds double precision)
returns boolean
language sql
security definer
set search_path = ''
as $$
  select f.accepted from public.finish_jobs(jsonb_build_array(jsonb_build_object(
    'id', p_id, 'attempt', p_attempt, 'ok', false,
    'snooze_ms', (greatest(p_seconds, 0) * 1000)::bigint))) f;
$$;

-- ---------------------------------------------------------------------------------------------
-- Enqueue with keys, and uploads grouped by their uploader
-- ---------------------------------------------------------------------------------------------

-- Two more arguments: the old signature goes, or every call by name would be ambiguous; the
-- new one (below, in this transaction) takes every call the old one took.
-- squawk-ignore ban-drop-function
drop function if exists public.enqueue_job(text, jsonb, integer, timestamptz, integer, text);
create or replace function public.enqueue_job(
  p_type text,
  p_input jsonb default '{}'::jsonb,
  p_priority integer default 0,
  p_run_at timestamptz default null,
  p_max_attempts integer default 5,
  p_dedupe_key text default null,
  p_concurrency_key text default null,
  p_group_key text default null
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  loop
    insert into public.jobs (type, input, priority, run_at, max_attempts, dedupe_key,
                             concurrency_key, group_key)
    values (p_type, coalesce(p_input, '{}'::jsonb), coalesce(p_priority, 0),
            coalesce(p_run_at, now()), coalesce(p_max_attempts, 5), p_dedupe_key,
            p_concurrency_key, p_group_key)
    on conflict (dedupe_key) where dedupe_key is not null and status in ('queued', 'running')
    do nothing
    returning id into v_id;
    if v_id is not null then
      return v_id;
    end if;
    select j.id into v_id from public.jobs j
    where j.dedupe_key = p_dedupe_key and j.status in ('queued', 'running');
    if v_id is not null then
      return v_id;
    end if;
  end loop;
end
$$;

alter table public.ingest_files add column if not exists owner text;
comment on column public.ingest_files.owner is
  'Who uploaded it (storage.objects.owner_id on Supabase): its jobs take turns with others''.';
-- The concurrency key of ingest_file jobs: set it to embeddings:<EMBEDDINGS_MODEL> when
-- embeddings are configured, so set_rate_limit(that key, p_max_running => n) bounds them.
alter table public.job_worker_settings add column if not exists ingest_concurrency_key text;

create or replace function public.ingest_files_enqueue_job()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform public.enqueue_job('ingest_file', jsonb_build_object('file_id', new.id),
                             p_dedupe_key => 'ingest_file:' || new.id::text,
                             p_concurrency_key => (select s.ingest_concurrency_key
                                                   from public.job_worker_settings s),
                             p_group_key => new.owner);
  return null;
end
$$;

create or replace function public.ingest_storage_object()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select from public.ingest_buckets b where b.bucket = new.bucket_id)
     and new.name is not null and right(new.name, 1) <> '/' then
    insert into public.ingest_files (bucket, path, content_type, size_bytes, owner)
    values (new.bucket_id, new.name, new.metadata ->> 'mimetype',
            nullif(new.metadata ->> 'size', '')::bigint,
            coalesce(to_jsonb(new) ->> 'owner_id', to_jsonb(new) ->> 'owner'));
  end if;
  return null;
end
$$;

select public.job_queue_restrict_functions(array[
  'set_rate_limit', 'acquire_rate', 'adjust_rate', 'pause_rate_limit', 'resume_rate_limit',
  'claimable_capacity', 'claim_jobs', 'job_max_snoozes', 'finish_jobs', 'snooze_job',
  'enqueue_job', 'ingest_files_enqueue_job', 'ingest_storage_object'
]);
