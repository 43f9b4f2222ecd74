#!/usr/bin/env bash
# Stores the cron_tick URL and secret where trigger_job_worker() reads them: Supabase Vault when
# the database has it, else database settings (app.settings.*). Safe to run again.
#   DATABASE_URL     from the environment, else from .env.local
#   CRON_TICK_URL    required: your cron_tick's URL (Lambda Function URL, Cloud Run URL)
#   CRON_SECRET      required
# Never prints a secret; ends by printing job_processing_status. The values reach the database
# as bound parameters, never in a statement's text (scripts/lib/cron_config.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/lib/cron_config.py
