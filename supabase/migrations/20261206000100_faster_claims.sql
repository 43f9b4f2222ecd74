-- Claims at a fraction of their cost (issue 19: a keyed claim within 0.9 of a plain one's
-- throughput; issue 21: what every claim pays). Same rules, same order; these costs removed:
--
-- 1. Candidates: the keyed claim read each group's first p_limit runnable jobs (20 groups, a
--    claim of 100: 2,000 rows ranked to take 100). A claim of n over G groups takes the groups'
--    jobs in rounds, so each group's first n/(G+1)+1 jobs nearly always hold the answer. The
--    claim now reads that many, and keeps the result only when it is provably the one the full
--    read gives (claim_candidates' "exact"); otherwise it reads again with p_limit per group.
--    Exact means: for every group whose read was cut short, the claim's last job comes before
--    that group's first unread one in (priority, turn) order, so no unread job could have
--    taken a place.
-- 2. Planning on every call: a SQL function with settings of its own (set search_path) is
--    planned afresh each time it runs, and planning cost more than running. rescue_expired_jobs
--    (run by every claim, plain or keyed) becomes PL/pgSQL, whose plans are kept for the
--    session, and so does claimable_capacity(), which the candidates' query calls; and the
--    claim's statements use generic plans (a custom plan was made for every call of the
--    candidates' query, whose per-group limit a generic plan cannot see).
-- 3. Writes: job_group_turns is written only when a claim leaves a queued group unserved or
--    serves a group with no turn recorded yet.
-- 4. JIT: the keyed statement's estimated cost passes jit_above_cost on most servers, and
--    compiling it took 30 ms of a 36 ms claim. A claim is a short OLTP statement: compiled code
--    never pays back, so JIT is off for claims.

set lock_timeout = '10s';
set statement_timeout = '5min';

-- As in 20261128000100 (requeue, or fail on its last attempt, each running job whose lease
-- has expired, recording the attempt as expired), in PL/pgSQL: see 2. above.
create or replace function public.rescue_expired_jobs()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_rescued integer;
begin
  with expired as (
    select j.id, j.locked_by, j.started_at
    from public.jobs j
    where j.status = 'running' and j.lease_expires_at <= now()
    for update skip locked
  ),
  rescued as (
    update public.jobs j
    set status = case when j.attempts >= j.max_attempts then 'failed' else 'queued' end,
        error = 'lease expired before the attempt finished (worker crashed or timed out)',
        run_at = now(),
        locked_by = null,
        lease_expires_at = null,
        finished_at = case when j.attempts >= j.max_attempts then now() end,
        updated_at = now()
    from expired e
    where j.id = any (array(select e2.id from expired e2)) and j.id = e.id
    returning j.id, j.attempts, j.error
  ),
  recorded as (
    insert into public.job_attempts (job_id, attempt, worker, outcome, error, started_at)
    select r.id, r.attempts, e.locked_by, 'expired', r.error, e.started_at
    from rescued r join expired e on e.id = r.id
    returning 1
  )
  select count(*)::integer into v_rescued from recorded;
  return v_rescued;
end
$$;

-- As in 20261201000000 (keys whose jobs may not be claimed now, and how many more each may
-- start), in PL/pgSQL: see 2. above.
create or replace function public.claimable_capacity()
returns table (key text, capacity integer)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  select r.key,
         case when r.paused_until > now() then 0
              else greatest(r.max_running - (
                select count(*) from public.jobs j
                where j.status = 'running' and j.concurrency_key = r.key
                  and j.lease_expires_at > now()), 0)::integer
         end
  from public.rate_limits r
  where r.paused_until > now() or r.max_running is not null;
end
$$;

-- Every group that has a queued job: one probe of jobs_group_claim_idx per group.
create or replace function public.queued_groups()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return (with recursive groups(g) as (
    (select c.group_key from public.jobs c
     where c.status = 'queued' and c.group_key is not null
     order by c.group_key limit 1)
    union all
    select (select c.group_key from public.jobs c
            where c.status = 'queued' and c.group_key > groups.g
            order by c.group_key limit 1)
    from groups where groups.g is not null
  )
  select coalesce(array_agg(g), '{}') from groups where g is not null);
end
$$;

-- The jobs a keyed claim of p_limit takes (in claim order, not yet locked), reading the first
-- p_per_group runnable jobs of each group in p_groups and of the null group; "exact" is true
-- when reading more of any group could not change them (see above).
create or replace function public.claim_candidates(
  p_groups text[],
  p_per_group integer,
  p_limit integer,
  p_types text[] default null
)
returns table (ids bigint[], exact boolean)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  -- PL/pgSQL, not SQL, and (under claim_jobs' settings) a generic plan: made once per
  -- session. A SQL function's plan is made afresh on every call, and so is a custom plan,
  -- which the planner keeps choosing here (the per-group limit is unknown to a generic plan);
  -- either cost more than the query.
  return query
  with capacity as (
    select * from public.claimable_capacity()
  ),
  runnable as (
    select c.*
    from unnest(p_groups) g(g)
    cross join lateral (
      select c.id, c.priority, c.run_at, c.concurrency_key, c.group_key
      from public.jobs c
      where c.status = 'queued' and c.group_key = g.g
        and c.run_at <= now()
        and (p_types is null or c.type = any (p_types))
        and (c.concurrency_key is null or not exists (
               select from capacity k where k.key = c.concurrency_key and k.capacity = 0))
      order by c.priority, c.run_at, c.id
      limit p_per_group
    ) c
    union all
    (select c.id, c.priority, c.run_at, c.concurrency_key, c.group_key
     from public.jobs c
     where c.status = 'queued' and c.group_key is null
       and c.run_at <= now()
       and (p_types is null or c.type = any (p_types))
       and (c.concurrency_key is null or not exists (
              select from capacity k where k.key = c.concurrency_key and k.capacity = 0))
     order by c.priority, c.run_at, c.id
     limit p_per_group)
  ),
  turns as (
    select r.*,
           row_number() over (partition by r.group_key, r.priority
                              order by r.run_at, r.id) as turn,
           count(*) over (partition by r.group_key) as fetched,
           row_number() over (partition by r.group_key
                              order by r.priority desc, r.run_at desc, r.id desc) as from_end
    from runnable r
  ),
  ordered as (
    select r.id, r.priority, r.turn, r.concurrency_key,
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
    select r.id, r.priority, r.turn, r.place from ranked r
    left join capacity k on k.key = r.concurrency_key
    where k.key is null or r.key_rank <= k.capacity
    order by r.place
    limit p_limit
  ),
  -- The last job read of each group whose read was cut short: its unread jobs come after it.
  cut as (
    select t.priority, t.turn from turns t
    where t.fetched >= p_per_group and t.from_end = 1
  ),
  last_taken as (
    select a.priority, a.turn from allowed a order by a.place desc limit 1
  )
  select
    array(select a.id from allowed a order by a.place),
    p_per_group >= p_limit
      or not exists (select from cut)
      or ((select count(*) from allowed) >= p_limit
          and not exists (select from cut c, last_taken l
                          where (l.priority, l.turn) > (c.priority, c.turn)));
end
$$;

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
-- For the statements of this call, the candidates' included (see above).
set jit = off
set plan_cache_mode = force_generic_plan
as $$
declare
  v_limit integer := greatest(coalesce(p_limit, 1), 0);
  v_ids bigint[];
  v_keyed boolean;
  v_groups text[];
  v_per_group integer;
  v_exact boolean;
  v_write_turns boolean;
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
    -- Claims of limited keys are serialised on those keys' rows, so two claims can never
    -- both take a key's last free slot.
    perform 1 from public.rate_limits r
    where r.max_running is not null
    order by r.key
    for update;

    v_groups := public.queued_groups();
    -- Enough for rounds across every group and the null one, with one to spare.
    v_per_group := least(v_limit, v_limit / (cardinality(v_groups) + 1) + 1);
    loop
      select c.ids, c.exact into v_ids, v_exact
      from public.claim_candidates(v_groups, v_per_group, v_limit, p_types) c;
      exit when v_exact;
      v_per_group := v_limit;
    end loop;

    select array(
      select j.id from public.jobs j
      where j.id = any (v_ids) and j.status = 'queued'
      for update skip locked
    ) into v_ids;

    -- Turns rotate across claims: the groups served now go after the others next time. When
    -- this claim served every queued group and each has a turn recorded, none goes after
    -- another (their last order stands), and nothing is written; a group never served before
    -- (no row) still goes first next time, so it gets its row.
    -- The null group counts when it has a queued job (found through its own index, in
    -- jobs_ungrouped_claim_idx's order, or the planner may scan the table for an empty group).
    select count(distinct coalesce(j.group_key, '')) < cardinality(v_groups) + (
             select count(*) from (
               select from public.jobs c where c.status = 'queued' and c.group_key is null
               order by c.priority, c.run_at, c.id limit 1) n)
           or bool_or(not exists (select from public.job_group_turns t
                                  where t.group_key = coalesce(j.group_key, '')))
      into v_write_turns
    from public.jobs j where j.id = any (v_ids);
    if v_write_turns then
      insert into public.job_group_turns as t (group_key, served_at)
      select g.key, clock_timestamp()
      from (select distinct coalesce(j.group_key, '') as key
            from public.jobs j where j.id = any (v_ids)) g
      on conflict (group_key) do update set served_at = excluded.served_at;
    end if;
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

select public.job_queue_restrict_functions(array[
  'rescue_expired_jobs', 'claimable_capacity', 'queued_groups', 'claim_candidates', 'claim_jobs'
]);
