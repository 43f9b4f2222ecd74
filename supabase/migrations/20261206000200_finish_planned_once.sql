-- finish_jobs as in 20261201000000, in PL/pgSQL (issue 21). A SQL function with settings of its
-- own (set search_path) is planned afresh on every call, and this one's plan (a data-modifying
-- CTE over jsonb_to_recordset, the jobs update and the attempts insert) cost about as much as
-- running it for 100 outcomes: worker_pull's profile (bench/drain.py, Server-Timing) put
-- finish at 45% of a call. PL/pgSQL keeps the plan for the session.

set lock_timeout = '10s';
set statement_timeout = '5min';

create or replace function public.finish_jobs(p_outcomes jsonb, p_worker text default null)
returns table (
  id bigint,
  status text,
  attempts integer,
  run_at timestamptz,
  error text,
  accepted boolean
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
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
    -- Each outcome finds its job through the primary key. (The id array the 20261201 version
    -- added here drove the update from jobs' side, and the planner, sure the CTE held one row,
    -- scanned all of it again for every job: 100 x 100 rows for a batch of 100.)
    where j.id = d.id and j.status = 'running' and j.attempts = d.attempt
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
end
$$;

select public.job_queue_restrict_functions(array['finish_jobs']);
