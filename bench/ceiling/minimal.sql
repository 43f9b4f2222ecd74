-- The physical floor of this design, for pgbench (bench/peers.py): a claim of 50 jobs (one
-- UPDATE over SELECT ... FOR UPDATE SKIP LOCKED, in claim order) and their completion (one
-- UPDATE ... SET status = 'done'), one transaction each, as a worker needs at the least. No
-- attempt history, no fencing token check, no rescue, no limits: what every real queue adds.
with claimable as (
  select j.id from public.jobs j
  where j.status = 'queued' and j.run_at <= now()
  order by j.priority, j.run_at, j.id
  limit 50
  for update skip locked
),
claimed as (
  update public.jobs j
  set status = 'running', attempts = j.attempts + 1, locked_by = 'pgbench',
      lease_expires_at = now() + interval '5 minutes', started_at = now()
  from claimable c where j.id = c.id
  returning j.id
)
select quote_literal(coalesce(array_agg(id), '{}')::text) as ids from claimed \gset
update public.jobs set status = 'done', finished_at = now(), lease_expires_at = null
where id = any (:ids::bigint[]);
