-- Supabase's API roles, created only where they are missing (plain PostgreSQL).
-- On a hosted Supabase project these roles already exist and nothing here changes them.

-- Bounded waits: never queue long behind another session's lock, never run unbounded.
set lock_timeout = '10s';
set statement_timeout = '5min';

do $$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
    begin
      -- Supabase's service_role bypasses row-level security; only a superuser may grant that.
      create role service_role nologin noinherit bypassrls;
    exception when insufficient_privilege then
      create role service_role nologin noinherit;
    end;
  end if;
end
$$;

grant usage on schema public to anon, authenticated, service_role;

-- Every function the queue defines is for the server side only. PostgreSQL grants EXECUTE
-- to PUBLIC on new functions (and Supabase's default privileges add anon and authenticated),
-- so each migration ends by calling this on the functions it created.
create or replace function public.job_queue_restrict_functions(p_names text[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure
    from pg_catalog.pg_proc p
    where p.pronamespace = 'public'::regnamespace and p.proname = any (p_names)
  loop
    execute format('revoke all on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;

-- Upgrading a project that followed the seed runbook: it has its own public.jobs and
-- public.ingest_files, of another shape (uuid or bigint ids, other statuses, fewer columns).
-- Before this project creates its tables, such a table is set aside under
-- <name>_before_jobqueue, with its indexes, constraints and sequences renamed alike (their
-- names would collide) and its triggers dropped (the seed's trigger would write seed-shaped
-- jobs); 20261128000400_adopt_seed_rows.sql then copies every row in. A table is ours when it
-- has p_marker, a column only this project's table has; nothing is done to it.
-- Returns true when it set the table aside.
create or replace function public.jobqueue_set_aside(p_table text, p_marker text)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_table regclass := to_regclass('public.' || p_table);
  v_aside text := p_table || '_before_jobqueue';
  v_name text;
begin
  if v_table is null
     or exists (select from pg_catalog.pg_attribute
                where attrelid = v_table and attname = p_marker and not attisdropped) then
    return false;
  end if;
  if to_regclass('public.' || v_aside) is not null then
    raise exception 'public.% exists and so does public.%: an earlier upgrade was interrupted',
      p_table, v_aside
      using hint = 'Compare the two, keep the rows you need in public.' || v_aside
        || ', drop public.' || p_table || ', and migrate again.';
  end if;
  for v_name in
    select t.tgname from pg_catalog.pg_trigger t where t.tgrelid = v_table and not t.tgisinternal
  loop
    execute format('drop trigger %I on %s', v_name, v_table);
  end loop;
  for v_name in
    select c.relname from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
    where i.indrelid = v_table
  loop
    execute format('alter index public.%I rename to %I', v_name, v_name || '_before_jobqueue');
  end loop;
  for v_name in
    select c.conname from pg_catalog.pg_constraint c
    where c.conrelid = v_table and c.contype not in ('p', 'u', 'x')
  loop
    execute format('alter table %s rename constraint %I to %I', v_table, v_name,
                   v_name || '_before_jobqueue');
  end loop;
  for v_name in
    select s.relname from pg_catalog.pg_depend d
    join pg_catalog.pg_class s on s.oid = d.objid and s.relkind = 'S'
    where d.refobjid = v_table and d.deptype in ('a', 'i')
  loop
    execute format('alter sequence public.%I rename to %I', v_name, v_name || '_before_jobqueue');
  end loop;
  execute format('alter table %s rename to %I', v_table, v_aside);
  -- The old rows stay, untouched, but out of the API roles' reach.
  execute format('alter table public.%I enable row level security', v_aside);
  if exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    execute format('revoke all on public.%I from anon, authenticated', v_aside);
  end if;
  raise notice 'public.% set aside as public.%: its rows are copied into the new table',
    p_table, v_aside;
  return true;
end
$$;

select public.job_queue_restrict_functions(
  array['job_queue_restrict_functions', 'jobqueue_set_aside']
);
