-- Every query the Python side runs, one named block each, named after the SQL function it
-- calls (supabase/migrations/): the queue's rules live there, never here. Parameters carry the
-- functions' own argument names, so PostgREST's /rpc takes the very same ones; a scalar result
-- is returned as `value`.

-- name: claim_jobs
select id, type, input, attempts, max_attempts
from public.claim_jobs(%(p_worker)s, %(p_limit)s, %(p_lease_seconds)s, %(p_types)s);

-- name: finish_jobs
select id, status, attempts, error, accepted
from public.finish_jobs(%(p_outcomes)s, %(p_worker)s);

-- name: finish_and_claim_jobs
select kind, id, status, attempts, error, accepted, type, input
from public.finish_and_claim_jobs(
  %(p_outcomes)s, %(p_worker)s, %(p_limit)s, %(p_lease_seconds)s, %(p_types)s
);

-- name: extend_job_leases
select value from public.extend_job_leases(%(p_ids)s, %(p_attempts)s, %(p_lease_seconds)s) value;

-- name: release_jobs
select value from public.release_jobs(%(p_ids)s, %(p_attempts)s) value;
