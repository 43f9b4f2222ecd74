-- Our own queue API at its fastest, for pgbench (bench/peers.py): claim_jobs of 50 and
-- finish_jobs of their outcomes, in one statement (one round trip, one commit): what
-- worker_pull does per batch, without HTTP and Python.
select count(*) from public.finish_jobs(
  (select coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'attempt', c.attempts, 'ok', true)),
                   '[]')
   from public.claim_jobs('pgbench', 50, 300, null) c),
  'pgbench');
