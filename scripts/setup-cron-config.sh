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
export CRON_TICK_URL CRON_SECRET

# The values reach psql through its environment (\getenv), never its command line or output;
# terse errors keep psql from quoting a statement back.
psql "$DATABASE_URL" --no-psqlrc --quiet -v ON_ERROR_STOP=1 <<'SQL'
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
