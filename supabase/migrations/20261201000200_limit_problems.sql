-- job_processing_status names rate-limit trouble (issue 19): a key paused, or at its
-- max_running, while its jobs wait longer than job_worker_settings.stall_after.
--
-- The status function of 20261128000200 (released, so never edited) is kept as
-- job_processing_status_base(); job_processing_status_row() becomes a wrapper that adds these
-- problems, and the view reads the wrapper. Safe to apply again, alone or with every file.

set lock_timeout = '10s';
set statement_timeout = '5min';

create or replace function public.rate_limit_problems()
returns text[]
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(array_agg(p order by p), array[]::text[])
  from (
    select format(
             '%s queued job(s) of rate key %s have waited longer than %s while it is %s: %s',
             w.waiting, r.key, s.stall_after,
             case when r.paused_until > now()
                  then 'paused until ' || to_char(r.paused_until at time zone 'UTC',
                                                  'YYYY-MM-DD HH24:MI:SS') || ' UTC'
                  else 'at its max_running (' || r.max_running || ')' end,
             case when r.paused_until > now()
                  then 'the provider asked for the pause; select resume_rate_limit('''
                       || r.key || ''') ends it early'
                  else 'raise it with select set_rate_limit(''' || r.key
                       || ''', p_max_running => ...), or look for stuck running jobs' end) as p
    from public.rate_limits r
    cross join public.job_worker_settings s
    cross join lateral (
      select count(*) as waiting from public.jobs j
      where j.status = 'queued' and j.concurrency_key = r.key
        and j.run_at <= now() - s.stall_after
    ) w
    where w.waiting > 0
      and (r.paused_until > now()
           or r.max_running <= (select count(*) from public.jobs j
                                where j.status = 'running' and j.concurrency_key = r.key
                                  and j.lease_expires_at > now()))
  ) problems;
$$;

do $$
declare
  v_row_src text := (select p.prosrc from pg_catalog.pg_proc p
                     where p.oid = to_regprocedure('public.job_processing_status_row()'));
begin
  if v_row_src is not null and v_row_src not like '%job_processing_status_base%' then
    -- The row function holds the released body: it becomes the base.
    drop function if exists public.job_processing_status_base();
    alter function public.job_processing_status_row() rename to job_processing_status_base;
  end if;
end
$$;

create or replace function public.job_processing_status_row()
returns table (
  cron_job_name text, cron_schedule text, cron_active boolean, last_run_status text,
  last_run_at timestamptz, last_run_message text, worker_configured boolean,
  cron_tick_url_source text, cron_secret_source text, http_client text, kick_enabled boolean,
  queued bigint, running bigint, done bigint, failed bigint, cancelled bigint,
  oldest_queued_age interval, stalled bigint, expired_leases bigint, last_tick_at timestamptz,
  last_tick_status integer, last_tick_error text, last_tick_summary jsonb, problems text[]
)
language sql
stable
security definer
set search_path = ''
as $$
  select b.cron_job_name, b.cron_schedule, b.cron_active, b.last_run_status, b.last_run_at,
         b.last_run_message, b.worker_configured, b.cron_tick_url_source, b.cron_secret_source,
         b.http_client, b.kick_enabled, b.queued, b.running, b.done, b.failed, b.cancelled,
         b.oldest_queued_age, b.stalled, b.expired_leases, b.last_tick_at, b.last_tick_status,
         b.last_tick_error, b.last_tick_summary,
         b.problems || public.rate_limit_problems()
  from public.job_processing_status_base() b;
$$;

create or replace view public.job_processing_status as
  select * from public.job_processing_status_row();

revoke all on public.job_processing_status from anon, authenticated;
grant select on public.job_processing_status to service_role;

select public.job_queue_restrict_functions(array[
  'rate_limit_problems', 'job_processing_status_base', 'job_processing_status_row'
]);
