#!/usr/bin/env bash
# Stores the cron_tick URL and secret where trigger_job_worker() reads them: Supabase Vault when
# the database has it, else database settings (app.settings.*). Safe to run again.
#   DATABASE_URL     from the environment, else from .env.local
#   CRON_TICK_URL    required (e.g. https://<ref>.supabase.co/functions/v1/cron-tick)
#   CRON_SECRET      required
# Never prints a secret; ends by printing job_processing_status. Needs psql 15 or later.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DATABASE_URL:-}" ] && [ -f .env.local ]; then
  DATABASE_URL=$(sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?DATABASE_URL=['\"]?([^'\"]*)['\"]?[[:space:]]*$/\2/p" .env.local | tail -n 1)
fi
for name in DATABASE_URL CRON_TICK_URL CRON_SECRET; do
  [ -n "${!name:-}" ] || { echo "setup-cron-config.sh: $name is not set" >&2; exit 2; }
done
export CRON_TICK_URL CRON_SECRET DATABASE_URL

# The connection (password included) reaches psql through a private service file, the values
# through its environment (\getenv): never a command line, which `ps` shows to every user.
# Terse errors keep psql from quoting a statement back.
PGSERVICEFILE=$(mktemp)
trap 'rm -f "$PGSERVICEFILE"' EXIT
chmod 600 "$PGSERVICEFILE"
python3 scripts/lib/pgservice.py > "$PGSERVICEFILE" \
  || { echo "setup-cron-config.sh: DATABASE_URL is not a PostgreSQL connection string" >&2; exit 2; }
export PGSERVICEFILE
psql "service=jobqueue" --no-psqlrc --quiet -v ON_ERROR_STOP=1 <<'SQL'
\set VERBOSITY terse
\getenv cron_tick_url CRON_TICK_URL
\getenv cron_secret CRON_SECRET
\pset tuples_only on
select 'cron_tick_url stored in ' || public.set_job_worker_config('cron_tick_url', :'cron_tick_url');
select 'cron_secret stored in ' || public.set_job_worker_config('cron_secret', :'cron_secret');
select public.schedule_job_worker();
\pset tuples_only off
\x on
select * from public.job_processing_status;
SQL

# Nothing will ever run without an HTTP client in the database: say which one to enable.
client=$(psql "service=jobqueue" --no-psqlrc -X -At -c "select coalesce(public.job_worker_http_client(), '')")
if [ -z "$client" ]; then
  echo "setup-cron-config.sh: WARNING: the database has no HTTP client, so nothing can call" \
    "cron_tick: enable pg_net (create extension pg_net; on Supabase: Database > Extensions)," \
    "or the http extension, then run this again" >&2
  exit 1
fi
