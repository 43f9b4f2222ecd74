-- The database drives processing: pg_cron calls trigger_job_worker() every minute, which asks
-- cron_tick (over pg_net, else the http extension) to drain the queue. Everything here also
-- applies on plain PostgreSQL without pg_cron, pg_net or Vault; the status view says what is
-- missing.
--
-- Where the cron_tick URL and secret live (each read on its own, first found wins):
--   1. Supabase Vault: vault.decrypted_secrets, names 'cron_tick_url' and 'cron_secret'
--   2. settings app.settings.cron_tick_url and app.settings.cron_secret
-- scripts/setup-cron-config.sh writes them. They are never stored in a table or in cron.job.

-- Bounded waits: never queue long behind another session's lock, never run unbounded.
set lock_timeout = '10s';
set statement_timeout = '5min';

-- Tunables, one row. Change them with UPDATE; no migration needs editing.
create table if not exists public.job_worker_settings (
  id boolean primary key default true check (id),
  iterations integer not null default 5 check (iterations between 1 and 100),
  delay_ms integer not null default 500 check (delay_ms between 0 and 60000),
  -- A batch per worker_pull call: without it each call would run one job (the runbook's rate).
  max_jobs integer default 100 check (max_jobs between 1 and 100),
  concurrency integer check (concurrency between 1 and 50),
  schedule text not null default '* * * * *',
  request_timeout_ms integer not null default 120000 check (request_timeout_ms > 0),
  kick_enabled boolean not null default false,
  kick_min_interval_ms integer not null default 250 check (kick_min_interval_ms >= 0),
  last_kick_at timestamptz,
  finished_job_retention interval not null default '7 days',
  run_history_retention interval not null default '7 days'
);
-- Added by name, so a database migrated before they existed gains them too.
alter table public.job_worker_settings
  -- A queued job runnable for longer than this is reported in job_processing_status.problems.
  add column if not exists stall_after interval not null default '10 minutes',
  -- The last call to cron_tick, so its answer can be found again: pg_net's request id (its
  -- answer lands in net._http_response later), or the http extension's answer itself.
  add column if not exists last_tick_at timestamptz,
  add column if not exists last_tick_client text,
  add column if not exists last_tick_request_id bigint,
  add column if not exists last_tick_status integer,
  add column if not exists last_tick_content text;
insert into public.job_worker_settings (id) values (true) on conflict (id) do nothing;

alter table public.job_worker_settings enable row level security;
drop policy if exists job_worker_settings_service_role_all on public.job_worker_settings;
create policy job_worker_settings_service_role_all on public.job_worker_settings
  for all to service_role using (true) with check (true);
revoke all on public.job_worker_settings from anon, authenticated;  -- see the queue's migration
grant select, update on public.job_worker_settings to service_role;

-- Vault first, then app.settings.*: the value and where it came from ('vault' or 'settings'),
-- both null when neither holds it.
create or replace function public.job_worker_config_lookup(
  p_name text, out value text, out source text
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if to_regclass('vault.decrypted_secrets') is not null then
    execute 'select decrypted_secret from vault.decrypted_secrets where name = $1 limit 1'
      into value using p_name;
    source := case when coalesce(value, '') <> '' then 'vault' end;
  end if;
  if source is null then
    value := nullif(current_setting('app.settings.' || p_name, true), '');
    source := case when value is not null then 'settings' end;
  end if;
end
$$;

create or replace function public.job_worker_config(p_name text)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select (public.job_worker_config_lookup(p_name)).value;
$$;

-- Stores one of them: in Vault where it exists, else as a database setting (new sessions see it;
-- this one at once). scripts/setup-cron-config.sh calls it; it never echoes the value.
create or replace function public.set_job_worker_config(p_name text, p_value text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_name not in ('cron_tick_url', 'cron_secret') then
    raise exception 'unknown setting %: expected cron_tick_url or cron_secret', p_name;
  end if;
  if coalesce(p_value, '') = '' then
    raise exception '% must not be empty', p_name;
  end if;
  if to_regclass('vault.secrets') is not null then
    execute 'select id from vault.secrets where name = $1 limit 1' into v_id using p_name;
    if v_id is null then
      execute 'select vault.create_secret($1, $2)' using p_value, p_name;
    else
      execute 'select vault.update_secret($1, $2)' using v_id, p_value;
    end if;
    -- No plaintext copy may outlive the move to Vault: any role can read a database setting.
    if coalesce(current_setting('app.settings.' || p_name, true), '') <> ''
       or exists (select from pg_catalog.pg_db_role_setting d
                  join pg_catalog.pg_database b on b.oid = d.setdatabase
                  where b.datname = current_database() and d.setrole = 0
                    and exists (select from unnest(d.setconfig) c
                                where c like 'app.settings.' || p_name || '=%')) then
      begin
        execute format('alter database %I reset %I', current_database(),
                       'app.settings.' || p_name);
      exception when insufficient_privilege then
        raise warning 'app.settings.% still holds an old copy: reset it as the database owner',
          p_name;
      end;
      perform set_config('app.settings.' || p_name, '', false);
    end if;
    return 'vault';
  end if;
  -- The fallback: readable by every role through current_setting() (docs/runbook.md says so).
  raise warning 'Vault is not installed: % is stored as a database setting, which every role '
    'can read with current_setting(); enable supabase_vault and run this again', p_name;
  execute format('alter database %I set %I = %L',
                 current_database(), 'app.settings.' || p_name, p_value);
  perform set_config('app.settings.' || p_name, p_value, false);
  return 'settings';
end
$$;

-- The schema holding the http extension's http(http_request) (Supabase puts it in
-- "extensions", plain installs in "public"), or null.
create or replace function public.job_worker_http_schema()
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select n.nspname::text
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  join pg_catalog.pg_type t on t.oid = p.proargtypes[0]
  where p.proname = 'http' and p.pronargs = 1 and t.typname = 'http_request'
  order by n.nspname = 'extensions' desc
  limit 1;
$$;

-- Which HTTP client the database can use: 'pg_net' (asynchronous), 'http' (the http
-- extension, synchronous) or null.
create or replace function public.job_worker_http_client()
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select case
    when to_regprocedure('net.http_post(text, jsonb, jsonb, jsonb, integer)') is not null
      then 'pg_net'
    when public.job_worker_http_schema() is not null then 'http'
  end;
$$;

-- POSTs p_body to cron_tick with the x-cron-secret header. With pg_net the request is queued
-- and sent after commit (returns its request id); with the http extension it is sent now and
-- waits for the answer (returns the HTTP status).
create or replace function public.request_cron_tick(p_body jsonb)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_url text := public.job_worker_config('cron_tick_url');
  v_secret text := public.job_worker_config('cron_secret');
  v_client text := public.job_worker_http_client();
  v_timeout integer;
  v_schema text;
  v_result bigint;
  v_content text;
begin
  if v_url is null then
    raise exception 'the cron_tick URL is not configured'
      using hint = 'Run scripts/setup-cron-config.sh with CRON_TICK_URL set, or store it: '
        || 'select vault.create_secret(''<url>'', ''cron_tick_url''); '
        || 'without Vault: alter database <db> set app.settings.cron_tick_url = ''<url>''.';
  end if;
  if v_secret is null then
    raise exception 'the cron_tick secret is not configured'
      using hint = 'Run scripts/setup-cron-config.sh with CRON_SECRET set, or store it: '
        || 'select vault.create_secret(''<secret>'', ''cron_secret''); '
        || 'without Vault: alter database <db> set app.settings.cron_secret = ''<secret>''.';
  end if;
  select s.request_timeout_ms into v_timeout from public.job_worker_settings s;

  if v_client = 'pg_net' then
    execute 'select net.http_post(url := $1, body := $2, params := $3, headers := $4,
                                  timeout_milliseconds := $5)'
      into v_result
      using v_url, p_body, '{}'::jsonb,
            jsonb_build_object('Content-Type', 'application/json', 'x-cron-secret', v_secret),
            coalesce(v_timeout, 120000);
    update public.job_worker_settings
    set last_tick_at = now(), last_tick_client = v_client, last_tick_request_id = v_result,
        last_tick_status = null, last_tick_content = null;
  elsif v_client = 'http' then
    v_schema := public.job_worker_http_schema();
    execute format(
      'select r.status, r.content from %1$I.http((''POST'', $1,
                array[%1$I.http_header(''x-cron-secret'', $2)],
                ''application/json'', $3)::%1$I.http_request) r', v_schema)
      into v_result, v_content using v_url, v_secret, p_body::text;
    update public.job_worker_settings
    set last_tick_at = now(), last_tick_client = v_client, last_tick_request_id = null,
        last_tick_status = v_result, last_tick_content = left(v_content, 4000);
  else
    raise exception 'no HTTP client in the database: neither pg_net nor the http extension'
      using hint = 'create extension pg_net; (on Supabase: Database > Extensions > pg_net)';
  end if;
  return v_result;
end
$$;

-- What a tick asks cron_tick for, from job_worker_settings: n iterations (default: the setting),
-- `delay_ms` apart, `max_jobs` per worker_pull call and `concurrency` calls at a time.
create or replace function public.job_worker_tick_body(n integer default null)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'iterations', coalesce(n, s.iterations), 'delay', s.delay_ms,
    'max_jobs', s.max_jobs, 'concurrency', s.concurrency))
  from public.job_worker_settings s;
$$;

-- The scheduled call.
create or replace function public.trigger_job_worker()
returns bigint
language sql
volatile
security definer
set search_path = ''
as $$
  select public.request_cron_tick(public.job_worker_tick_body());
$$;

-- The runbook's manual trigger: n iterations now.
create or replace function public.manual_process_jobs(n integer default 5)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if n is null or n not between 1 and 100 then
    raise exception 'manual_process_jobs(n): n must be from 1 to 100, got %', n;
  end if;
  return public.request_cron_tick(public.job_worker_tick_body(n));
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Instant kick: a new job asks cron_tick to run now, at most once per kick_min_interval_ms
-- ---------------------------------------------------------------------------------------------

-- Statement-level, so a bulk insert kicks once. The advisory lock means concurrent inserters
-- never queue behind one another: whoever holds it kicks, the others carry on.
create or replace function public.jobs_kick_worker()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_due boolean;
begin
  if not exists (select from public.job_worker_settings s where s.kick_enabled)
     or not pg_catalog.pg_try_advisory_xact_lock(7422002) then
    return null;
  end if;
  begin
    update public.job_worker_settings s
    set last_kick_at = clock_timestamp()
    where s.last_kick_at is null
       or s.last_kick_at
          <= clock_timestamp() - make_interval(secs => s.kick_min_interval_ms / 1000.0)
    returning true into v_due;
    if v_due then
      perform public.trigger_job_worker();
    end if;
  exception when others then
    -- A kick is an optimisation and pg_cron the safety net: never fail the insert over it.
    raise warning 'job kick skipped: %', sqlerrm;
  end;
  return null;
end
$$;

drop trigger if exists jobs_kick_worker on public.jobs;
create trigger jobs_kick_worker
  after insert on public.jobs
  for each statement execute function public.jobs_kick_worker();

-- Turns the kick on or off. It needs pg_net: a synchronous client would call cron_tick before
-- the new job is committed, and make every insert wait for it.
create or replace function public.set_job_kick(
  p_enabled boolean, p_min_interval_ms integer default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if p_enabled and public.job_worker_http_client() is distinct from 'pg_net' then
    raise exception 'the instant kick needs pg_net'
      using hint = 'create extension pg_net; then call set_job_kick(true) again';
  end if;
  update public.job_worker_settings
  set kick_enabled = p_enabled,
      kick_min_interval_ms = coalesce(p_min_interval_ms, kick_min_interval_ms);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Housekeeping: nothing grows without bound
-- ---------------------------------------------------------------------------------------------

-- Deletes finished jobs (done, failed, cancelled) that finished longer than p_older_than ago,
-- with their attempts; returns how many jobs went. `jobqueue purge --older-than 7d` calls it.
create or replace function public.purge_finished_jobs(p_older_than interval)
returns bigint
language sql
security definer
set search_path = ''
as $$
  with gone as (
    delete from public.jobs j
    where j.status in ('done', 'failed', 'cancelled')
      and j.finished_at < now() - greatest(p_older_than, interval '0')
    returning j.id
  ), history as (
    delete from public.job_attempts a using gone where a.job_id = gone.id
  )
  select count(*) from gone;
$$;

create or replace function public.prune_job_history()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_settings public.job_worker_settings;
  v_jobs bigint;
  v_runs bigint := 0;
  v_responses bigint := 0;
begin
  select * into v_settings from public.job_worker_settings;
  with gone as (
    delete from public.jobs j
    where j.status in ('done', 'cancelled')
      and j.finished_at < now() - v_settings.finished_job_retention
    returning j.id
  ), history as (
    delete from public.job_attempts a using gone where a.job_id = gone.id
  )
  select count(*) into v_jobs from gone;
  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where end_time < now() - $1'
      using v_settings.run_history_retention;
    get diagnostics v_runs = row_count;
  end if;
  if to_regclass('net._http_response') is not null then
    execute 'delete from net._http_response where created < now() - $1'
      using v_settings.run_history_retention;
    get diagnostics v_responses = row_count;
  end if;
  return jsonb_build_object('jobs', v_jobs, 'cron_runs', v_runs, 'http_responses', v_responses);
end
$$;

-- (Re)creates the pg_cron jobs from job_worker_settings; a no-op without pg_cron. Call it after
-- changing the schedule. A seconds schedule ('10 seconds') needs pg_cron 1.5 or later.
-- pg_net keeps each queued call, headers included (our x-cron-secret), in
-- net.http_request_queue, and the answers in net._http_response; pg_net 0.20 grants ALL on them
-- to PUBLIC. Nothing but pg_net's own worker (a superuser) needs them: take them back from
-- PUBLIC, anon and authenticated. Run by the migration and by schedule_job_worker(), so a
-- pg_net enabled later is closed too. Where this role may not revoke (not the tables' owner),
-- it says so and the status view reports it.
create or replace function public.protect_http_client_tables()
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_table text;
begin
  foreach v_table in array array['net.http_request_queue', 'net._http_response'] loop
    if to_regclass(v_table) is not null then
      begin
        execute format('revoke all on table %s from public', v_table);
        if exists (select from pg_catalog.pg_roles where rolname = 'anon') then
          execute format('revoke all on table %s from anon, authenticated', v_table);
        end if;
      exception when insufficient_privilege then
        raise notice 'could not revoke access to % (%): revoke it as its owner', v_table, sqlerrm;
      end;
    end if;
  end loop;
end
$$;

create or replace function public.schedule_job_worker()
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_schedule text;
begin
  perform public.protect_http_client_tables();
  if to_regprocedure('cron.schedule(text, text, text)') is null then
    return 'pg_cron is not installed in this database: nothing scheduled';
  end if;
  select s.schedule into v_schedule from public.job_worker_settings s;
  begin
    execute 'select cron.schedule($1, $2, $3)'
      using 'process-queued-jobs', v_schedule, 'SELECT trigger_job_worker();';
  exception when invalid_parameter_value or invalid_text_representation then
    raise exception 'pg_cron rejected the schedule %: %', v_schedule, sqlerrm
      using hint = 'Use five-field cron syntax (''* * * * *''); ''N seconds'' needs pg_cron 1.5+. '
        || 'Fix job_worker_settings.schedule, then select schedule_job_worker();';
  end;
  execute 'select cron.schedule($1, $2, $3)'
    using 'prune-job-history', '17 3 * * *', 'SELECT prune_job_history();';
  return 'scheduled process-queued-jobs (' || v_schedule || ') and prune-job-history';
end
$$;

do $$
begin
  -- Enable the extensions where the server has them; a server without them still migrates.
  if exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron') then
    begin
      create extension if not exists pg_cron;
    exception when others then
      raise notice 'pg_cron not enabled in this database: %', sqlerrm;
    end;
  end if;
  if exists (select from pg_catalog.pg_available_extensions where name = 'pg_net') then
    begin
      create extension if not exists pg_net;
    exception when others then
      raise notice 'pg_net not enabled in this database: %', sqlerrm;
    end;
  end if;
end
$$;

select public.schedule_job_worker();

-- ---------------------------------------------------------------------------------------------
-- Status
-- ---------------------------------------------------------------------------------------------

-- The return type grows with the view: drop both so that a database migrated before can take
-- the new columns (create or replace cannot change a function's result columns).
-- squawk-ignore ban-drop-view
drop view if exists public.job_processing_status;  -- recreated below, in this transaction
-- squawk-ignore ban-drop-function
drop function if exists public.job_processing_status_row();  -- likewise

-- One row that says whether processing works, and if not, what to do: `problems` is empty when
-- all is well, else one sentence per problem, so `select problems from job_processing_status`
-- is a dead-man's switch a monitor can poll.
create or replace function public.job_processing_status_row()
returns table (
  cron_job_name text,
  cron_schedule text,
  cron_active boolean,
  last_run_status text,
  last_run_at timestamptz,
  last_run_message text,
  worker_configured boolean,
  cron_tick_url_source text,
  cron_secret_source text,
  http_client text,
  kick_enabled boolean,
  queued bigint,
  running bigint,
  done bigint,
  failed bigint,
  cancelled bigint,
  oldest_queued_age interval,
  stalled bigint,
  expired_leases bigint,
  last_tick_at timestamptz,
  last_tick_status integer,
  last_tick_error text,
  last_tick_summary jsonb,
  problems text[]
)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_jobid bigint;
  v_settings public.job_worker_settings;
  v_response jsonb;
  v_content text;
  v_when text;
begin
  cron_job_name := 'process-queued-jobs';
  problems := array[]::text[];
  select * into v_settings from public.job_worker_settings;

  -- Configuration.
  cron_tick_url_source := (public.job_worker_config_lookup('cron_tick_url')).source;
  cron_secret_source := (public.job_worker_config_lookup('cron_secret')).source;
  worker_configured := cron_tick_url_source is not null and cron_secret_source is not null;
  http_client := public.job_worker_http_client();
  kick_enabled := v_settings.kick_enabled;
  if cron_tick_url_source is null then
    problems := array_append(problems, 'The cron_tick URL is not configured: run '
      || 'scripts/setup-cron-config.sh with CRON_TICK_URL set (it stores cron_tick_url in Vault).');
  end if;
  if cron_secret_source is null then
    problems := array_append(problems, 'The cron_tick secret is not configured: run '
      || 'scripts/setup-cron-config.sh with CRON_SECRET set (it stores cron_secret in Vault).');
  end if;
  if http_client is null then
    problems := array_append(problems, 'The database has no HTTP client to call cron_tick with: '
      || 'create extension pg_net; (on Supabase: Database > Extensions > pg_net).');
  end if;

  -- The schedule and its last run.
  if to_regclass('cron.job') is not null then
    execute 'select jobid, schedule, active from cron.job where jobname = $1'
      into v_jobid, cron_schedule, cron_active using cron_job_name;
    if v_jobid is not null and to_regclass('cron.job_run_details') is not null then
      execute 'select status, start_time, return_message from cron.job_run_details
               where jobid = $1 order by start_time desc limit 1'
        into last_run_status, last_run_at, last_run_message using v_jobid;
    end if;
  end if;
  cron_active := coalesce(cron_active, false);
  if to_regclass('cron.job') is null then
    problems := array_append(problems, 'pg_cron is not installed in this database, so nothing calls '
      || 'cron_tick on a schedule: create extension pg_cron; then select schedule_job_worker(); '
      || '(or schedule cron_tick elsewhere: docs/runbook.md).');
  elsif v_jobid is null then
    problems := array_append(problems, 'There is no process-queued-jobs schedule: '
      || 'select schedule_job_worker();');
  elsif not cron_active then
    problems := array_append(problems, format('The process-queued-jobs schedule is paused: '
      || 'select cron.alter_job(%s, active := true);', v_jobid));
  end if;
  if last_run_status = 'failed' then
    problems := array_append(problems, format('The last scheduled run (%s) failed: %s. Fix its cause; '
      || 'select trigger_job_worker(); shows the same error at once.',
      last_run_at, coalesce(last_run_message, 'no message')));
  end if;

  -- The last call to cron_tick and its answer.
  last_tick_at := v_settings.last_tick_at;
  v_when := format('The last call to cron_tick (%s)', last_tick_at);
  if v_settings.last_tick_client = 'pg_net' and v_settings.last_tick_request_id is not null
     and to_regclass('net._http_response') is not null then
    execute 'select to_jsonb(r) from net._http_response r where r.id = $1'
      into v_response using v_settings.last_tick_request_id;
    if v_response is not null then
      last_tick_status := (v_response ->> 'status_code')::integer;
      v_content := v_response ->> 'content';
      last_tick_error := coalesce(
        v_response ->> 'error_msg',
        case when (v_response ->> 'timed_out')::boolean then 'timed out' end);
    elsif last_tick_at < now() - make_interval(secs => v_settings.request_timeout_ms / 1000.0)
                         - interval '1 minute' then
      last_tick_error := 'no answer recorded';
    end if;
  elsif v_settings.last_tick_client = 'http' then
    last_tick_status := v_settings.last_tick_status;
    v_content := v_settings.last_tick_content;
  end if;
  if last_tick_status between 200 and 299 and v_content is not null then
    begin
      last_tick_summary := v_content::jsonb;
    exception when others then
      last_tick_summary := null;
    end;
  end if;
  if last_tick_error is not null then
    problems := array_append(problems, format('%s got no answer (%s): check that the cron_tick URL stored '
      || 'in the database is right and cron_tick is deployed; a tick longer than '
      || 'job_worker_settings.request_timeout_ms times out.', v_when, last_tick_error));
  elsif last_tick_status = 401 then
    problems := array_append(problems, format('%s was refused with HTTP 401: the secret stored in the '
      || 'database does not match cron_tick''s CRON_SECRET; store the right one with '
      || 'scripts/setup-cron-config.sh.', v_when));
  elsif last_tick_status = 404 then
    problems := array_append(problems, format('%s got HTTP 404: the cron_tick URL stored in the database '
      || 'is wrong; store the right one with scripts/setup-cron-config.sh.', v_when));
  elsif last_tick_status is not null and last_tick_status not between 200 and 299 then
    problems := array_append(problems, format('%s got HTTP %s (%s): see cron_tick''s logs.', v_when,
      last_tick_status, coalesce(left(v_content, 300), 'no body')));
  elsif (last_tick_summary ->> 'calls')::integer > 0
        and last_tick_summary ->> 'errors' = last_tick_summary ->> 'calls' then
    problems := array_append(problems, format('In the last tick (%s) every call from cron_tick to '
      || 'worker_pull failed (%s of %s): check WORKER_PULL_URL and JOB_WORKER_SECRET where '
      || 'cron_tick runs, and worker_pull''s logs.', last_tick_at,
      last_tick_summary ->> 'errors', last_tick_summary ->> 'calls'));
  end if;

  -- The queue.
  select count(*) filter (where j.status = 'queued'),
         count(*) filter (where j.status = 'running'),
         count(*) filter (where j.status = 'done'),
         count(*) filter (where j.status = 'failed'),
         count(*) filter (where j.status = 'cancelled'),
         now() - min(j.created_at) filter (where j.status = 'queued'),
         count(*) filter (where j.status = 'queued' and j.run_at <= now() - v_settings.stall_after),
         count(*) filter (where j.status = 'running' and j.lease_expires_at <= now())
    into queued, running, done, failed, cancelled, oldest_queued_age, stalled, expired_leases
  from public.jobs j;
  if stalled > 0 then
    problems := array_append(problems, format('%s queued job(s) have been runnable for longer than %s '
      || '(job_worker_settings.stall_after): nothing is processing the queue; see the other '
      || 'problems, and cron_tick''s and worker_pull''s logs.', stalled, v_settings.stall_after));
  end if;
  if expired_leases > 0 then
    problems := array_append(problems, format('%s running job(s) have an expired lease (their worker died '
      || 'or timed out): the next claim requeues them, or select requeue_job(id); now.',
      expired_leases));
  end if;
  return next;
end
$$;

create or replace view public.job_processing_status as
  select * from public.job_processing_status_row();

revoke all on public.job_processing_status from anon, authenticated;
grant select on public.job_processing_status to service_role;

select public.job_queue_restrict_functions(array[
  'job_worker_config_lookup', 'job_worker_config', 'set_job_worker_config',
  'job_worker_http_schema', 'job_worker_http_client',
  'request_cron_tick', 'job_worker_tick_body', 'trigger_job_worker', 'manual_process_jobs', 'jobs_kick_worker',
  'set_job_kick', 'purge_finished_jobs', 'prune_job_history', 'schedule_job_worker',
  'protect_http_client_tables',
  'job_processing_status_row'
]);
