-- A blocked key's backlog is skipped, not read (issue 19: claim latency flat with limits in
-- use). The keyed claim read each group's runnable jobs in claim order and dropped those under
-- a key that was paused or at its max_running one row at a time, so while such a key held a
-- backlog every claim read all of it: 75 ms a claim with 100,000 jobs waiting under a paused
-- key, and a key at max_running 8 is blocked most of the time it has work. That is the normal
-- state of an embeddings key under load.
--
-- Claims now read lanes: a lane is one group's queued jobs under one concurrency key (the null
-- group is '', as in job_group_turns, and so is the null key). One index holds every lane in
-- claim order; a claim lists the lanes (one probe each), skips those of blocked keys without
-- reading them, and reads the first jobs of each other lane, merged into its group's order.
-- Same rules and order as before (20261206000100); the index replaces the two per-group ones.
-- One limit is gone on the way: a group whose first jobs sat under a nearly full key made a
-- claim take fewer jobs than asked; its free jobs are now another lane, read on their own.
--
-- The index is built inside the migration's transaction (where CONCURRENTLY is not allowed):
-- writes to jobs wait for the build, about three seconds per million queued jobs on two
-- cores. docs/upgrading.md says so.

set lock_timeout = '10s';
set statement_timeout = '30min';

create index if not exists jobs_lane_claim_idx on public.jobs
  ((coalesce(group_key, '')), (coalesce(concurrency_key, '')), priority, run_at, id)
  where status = 'queued';
-- The per-group indexes are replaced: dropping them takes jobs' lock for a moment (no scan),
-- bounded by lock_timeout above when a long transaction holds the table.
-- squawk-ignore require-concurrent-index-deletion
drop index if exists public.jobs_group_claim_idx;
-- squawk-ignore require-concurrent-index-deletion
drop index if exists public.jobs_ungrouped_claim_idx;

-- Every lane with a queued job, in index order: one probe each, however many jobs a lane holds.
create or replace function public.queued_lanes(out groups text[], out keys text[])
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  with recursive lanes(lane) as (
    (select array[coalesce(c.group_key, ''), coalesce(c.concurrency_key, '')]
     from public.jobs c
     where c.status = 'queued'
     order by coalesce(c.group_key, ''), coalesce(c.concurrency_key, '')
     limit 1)
    union all
    select (select array[coalesce(c.group_key, ''), coalesce(c.concurrency_key, '')]
            from public.jobs c
            where c.status = 'queued'
              and (coalesce(c.group_key, ''), coalesce(c.concurrency_key, ''))
                  > (l.lane[1], l.lane[2])
            order by coalesce(c.group_key, ''), coalesce(c.concurrency_key, '')
            limit 1)
    from lanes l where l.lane is not null
  )
  select coalesce(array_agg(l.lane[1]), '{}'), coalesce(array_agg(l.lane[2]), '{}')
    into groups, keys
  from lanes l where l.lane is not null;
end
$$;

-- The jobs a keyed claim of p_limit takes (in claim order, not yet locked), reading the first
-- p_per_lane runnable jobs of each lane whose key is not blocked (null: enough for rounds across
-- every group, with one to spare); "exact" is true when reading
-- more of any lane could not change them (see 20261206000100), and "new_turns" when taking them
-- changes the groups' turns: a queued group is left unserved, or a group served has no turn yet.
create or replace function public.claim_candidates(
  p_lane_groups text[],
  p_lane_keys text[],
  p_per_lane integer,
  p_limit integer,
  p_types text[] default null
)
returns table (ids bigint[], exact boolean, new_turns boolean)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  -- Every group with a queued job, the null one included (as '').
  v_groups integer := (select count(distinct g) from unnest(p_lane_groups) g);
  v_per_lane integer := coalesce(p_per_lane, least(p_limit, p_limit / greatest(v_groups, 1) + 1));
begin
  return query
  with capacity as (
    select * from public.claimable_capacity()
  ),
  blocked as (
    select k.key from capacity k where k.capacity = 0
  ),
  -- The lanes to read (a blocked key's are skipped unread), each with its group's last turn.
  lanes as (
    select l.g, l.k, t.served_at
    from unnest(p_lane_groups, p_lane_keys) l(g, k)
    left join public.job_group_turns t on t.group_key = l.g
    where l.k = '' or not exists (select from blocked b where b.key = l.k)
  ),
  read as (
    select c.*, l.g as group_key, l.served_at
    from lanes l
    cross join lateral (
      -- pos: the job's place in its lane's claim order (the index's order: no sort).
      select c.*, row_number() over (order by c.priority, c.run_at, c.id) as pos
      from (
        select c.id, c.priority, c.run_at, c.concurrency_key
        from public.jobs c
        where c.status = 'queued'
          and coalesce(c.group_key, '') = l.g and coalesce(c.concurrency_key, '') = l.k
          and c.run_at <= now()
          and (p_types is null or c.type = any (p_types))
          -- The '' lane also holds the jobs with no key, so it is read whatever '' may be.
          and (c.concurrency_key is null
               or not exists (select from blocked b where b.key = c.concurrency_key))
        order by c.priority, c.run_at, c.id
        limit v_per_lane
      ) c
    ) c
  ),
  -- A group is known in claim order only up to the first job at which one of its lanes' reads
  -- was cut short: a lane's unread jobs come after its last read one.
  cut as (
    select distinct on (r.group_key) r.group_key, r.priority, r.run_at, r.id
    from read r
    where r.pos = v_per_lane
    order by r.group_key, r.priority, r.run_at, r.id
  ),
  turns as (
    select r.*,
           row_number() over (partition by r.group_key, r.priority
                              order by r.run_at, r.id) as turn
    from read r
    where not exists (select from cut c
                      where c.group_key = r.group_key
                        and (r.priority, r.run_at, r.id) > (c.priority, c.run_at, c.id))
  ),
  ordered as (
    select r.*,
           row_number() over (order by r.priority, r.turn, r.served_at nulls first,
                                       r.run_at, r.id) as place
    from turns r
  ),
  allowed as (
    select o.id, o.priority, o.turn, o.place, o.group_key, o.served_at is null as first_turn
    from (select o.*,
                 row_number() over (partition by o.concurrency_key order by o.place) as key_rank
          from ordered o) o
    left join capacity k on k.key = o.concurrency_key
    where k.key is null or o.key_rank <= k.capacity
    order by o.place
    limit p_limit
  ),
  last_taken as (
    select a.priority, a.turn from allowed a order by a.place desc limit 1
  )
  select
    array(select a.id from allowed a order by a.place),
    v_per_lane >= p_limit
      or not exists (select from cut)
      or ((select count(*) from allowed) >= p_limit
          and not exists (select from turns t join cut c on c.id = t.id, last_taken l
                          where (l.priority, l.turn) > (t.priority, t.turn))),
    (select count(distinct a.group_key) from allowed a)
      < v_groups
      or exists (select from allowed a where a.first_turn);
end
$$;

-- Replaced by queued_lanes() and the lane signature above; only claim_jobs called them.
-- squawk-ignore ban-drop-function
drop function if exists public.claim_candidates(text[], integer, integer, text[]);
-- squawk-ignore ban-drop-function
drop function if exists public.queued_groups();

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
-- For the statements of this call, the candidates' included (see 20261206000100). Every
-- statement of a claim reads a few index entries from a known place, so the scans that read a
-- whole table or index are off: a lane's read got a bitmap scan of the whole lane and a sort
-- from the generic plan's estimates (45 ms for 20 lanes of 3,000 jobs, against 0.6 ms in
-- order), and the check for keyed jobs got a sequential scan (right while statistics say every
-- job is queued) that read every finished job at the table's start: a keyed claim grew from
-- 2.7 to 6.4 ms over a drain of 30,000 jobs, and stays at 2.7 with it off.
set jit = off
set plan_cache_mode = force_generic_plan
set enable_bitmapscan = off
set enable_seqscan = off
as $$
declare
  v_limit integer := greatest(coalesce(p_limit, 1), 0);
  v_ids bigint[];
  v_claimed integer;
  v_keyed boolean;
  v_lane_groups text[];
  v_lane_keys text[];
  v_per_lane integer;
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
    -- Keyed claims take turns, each seeing the last one's jobs as running: two claims can
    -- never both take a key's last free slot, nor (group keys alone) find the same candidates,
    -- where the second used to skip them all, locked, and come back empty with jobs waiting.
    -- An advisory lock, not the limited keys' rate_limits rows, which acquire_rate locks too:
    -- a handler's acquire no longer waits for a claim.
    perform pg_advisory_xact_lock(hashtextextended('jobqueue: keyed claims', 0));

    select l.groups, l.keys into v_lane_groups, v_lane_keys from public.queued_lanes() l;
    -- First a read of enough for rounds across the groups (v_per_lane null), then the full
    -- read when that could change the answer.
    loop
      select c.ids, c.exact, c.new_turns into v_ids, v_exact, v_write_turns
      from public.claim_candidates(v_lane_groups, v_lane_keys, v_per_lane, v_limit, p_types) c;
      exit when v_exact;
      v_per_lane := v_limit;
    end loop;
    -- The candidates are not locked ahead of the update: keyed claims take turns, so no other
    -- claim chases them, and one that someone else took meanwhile (a plain claim that began
    -- before the first keyed job was queued, an operator's cancel) fails the update's status
    -- check once that transaction ends, and is left out.
  end if;

  return query
  with claimed as (
    update public.jobs j
    set status = 'running',
        attempts = j.attempts + 1,
        locked_by = p_worker,
        lease_expires_at = now() + make_interval(secs => greatest(p_lease_seconds, 1)),
        -- With keys, the moment the claim really took the job (after its wait for its
        -- turn), not the transaction's start: attempt times are what max_running is checked
        -- against. Without, the statement's time, shared by the whole batch.
        started_at = case when v_keyed then clock_timestamp() else now() end,
        updated_at = now()
    where j.id = any (v_ids) and j.status = 'queued'
    returning j.id, j.type, j.input, j.attempts, j.max_attempts, j.lease_expires_at,
              j.priority, j.run_at, j.group_key
  )
  select c.id, c.type, c.input, c.attempts, c.max_attempts, c.lease_expires_at
  from claimed c
  order by c.priority, c.run_at, c.id;
  get diagnostics v_claimed = row_count;

  -- Turns rotate across claims: the groups served now go after the others next time. When
  -- this claim served every queued group and each has a turn recorded, none goes after another
  -- (their last order stands), and nothing is written; a group never served before (no row)
  -- still goes first next time, so it gets its row. The candidates say which; a candidate
  -- left out above may have left its group unserved.
  if v_keyed and (v_write_turns or v_claimed < cardinality(v_ids)) then
    insert into public.job_group_turns as t (group_key, served_at)
    select g.key, clock_timestamp()
    from (select distinct coalesce(j.group_key, '') as key
          from public.jobs j
          where j.id = any (v_ids) and j.status = 'running' and j.locked_by = p_worker) g
    on conflict (group_key) do update set served_at = excluded.served_at;
  end if;
end
$$;

select public.job_queue_restrict_functions(array['queued_lanes', 'claim_candidates', 'claim_jobs']);
