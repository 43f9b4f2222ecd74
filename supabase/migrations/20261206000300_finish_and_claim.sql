-- One round trip per batch (issue 21): a worker that has just run a batch records its outcomes
-- and claims the next batch in one call, one transaction, one commit. Same rules as the two
-- calls it replaces (finish_jobs, then claim_jobs, whose results it returns row by row, told
-- apart by kind); the outcomes are committed before the worker reports them, as before. The
-- claim comes second, so the jobs just finished no longer count against a key's max_running.

set lock_timeout = '10s';
set statement_timeout = '5min';

create or replace function public.finish_and_claim_jobs(
  p_outcomes jsonb,
  p_worker text,
  p_limit integer default 1,
  p_lease_seconds integer default 300,
  p_types text[] default null
)
returns table (
  kind text,
  id bigint,
  status text,
  attempts integer,
  error text,
  accepted boolean,
  type text,
  input jsonb
)
language plpgsql
security definer
set search_path = ''
as $$
begin
  return query
  select 'finished'::text, f.id, f.status, f.attempts, f.error, f.accepted,
         null::text, null::jsonb
  from public.finish_jobs(p_outcomes, p_worker) f;
  return query
  select 'claimed'::text, c.id, 'running'::text, c.attempts, null::text, null::boolean,
         c.type, c.input
  from public.claim_jobs(p_worker, p_limit, p_lease_seconds, p_types) c;
end
$$;

select public.job_queue_restrict_functions(array['finish_and_claim_jobs']);
