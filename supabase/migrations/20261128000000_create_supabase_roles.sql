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

select public.job_queue_restrict_functions(array['job_queue_restrict_functions']);
