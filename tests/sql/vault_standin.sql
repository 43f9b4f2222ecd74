-- Tests only, never in migrations: the part of Supabase Vault the project uses.
create schema if not exists vault;
create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text unique,
  secret text not null,
  created_at timestamptz not null default now()
);
create or replace view vault.decrypted_secrets as
  select id, name, secret as decrypted_secret, created_at from vault.secrets;
create or replace function vault.create_secret(
  new_secret text, new_name text default null, new_description text default ''
) returns uuid language sql as $$
  insert into vault.secrets (name, secret) values (new_name, new_secret) returning id;
$$;
create or replace function vault.update_secret(
  secret_id uuid, new_secret text default null, new_name text default null,
  new_description text default null
) returns void language sql as $$
  update vault.secrets set secret = coalesce(new_secret, secret), name = coalesce(new_name, name)
  where id = secret_id;
$$;
