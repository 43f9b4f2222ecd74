-- Every query the Python side runs, one named block each. Each calls a SQL function from
-- supabase/migrations/: the queue's rules live there, never here.

-- name: claim_jobs
select id, type, input, attempts, max_attempts
from public.claim_jobs(%(worker)s, %(limit)s, %(lease_seconds)s, %(types)s);

-- name: finish_jobs
select id, status, attempts, error, accepted
from public.finish_jobs(%(outcomes)s, %(worker)s);

-- name: extend_job_leases
select id from public.extend_job_leases(%(ids)s, %(attempts)s, %(lease_seconds)s) as id;

-- name: release_jobs
select id from public.release_jobs(%(ids)s, %(attempts)s) as id;

-- name: get_ingest_file
select id::text, bucket, path, status, content_type, size_bytes
from public.get_ingest_file(%(file_id)s);

-- name: mark_ingest_file_processed
select public.mark_ingest_file_processed(
  %(file_id)s, %(text)s, %(metadata)s, %(content_type)s, %(size_bytes)s) as updated;
