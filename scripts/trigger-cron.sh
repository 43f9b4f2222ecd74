#!/usr/bin/env bash
# One POST to cron_tick with {"iterations": N, "delay": MS}, printing its JSON answer.
#   usage: trigger-cron.sh [iterations] [delay_ms]     (defaults 5 and 1000)
#   CRON_SECRET      required
#   CRON_TICK_URL    or SUPABASE_URL (then $SUPABASE_URL/functions/v1/cron-tick)
set -euo pipefail
. "$(dirname "$0")/lib/post-json.sh"

iterations=${1:-5}
delay=${2:-1000}
for value in "$iterations" "$delay"; do
  [[ $value =~ ^[0-9]+$ ]] || { echo "trigger-cron.sh: '$value' is not a whole number" >&2; exit 2; }
done
[ -n "${CRON_SECRET:-}" ] || die_missing CRON_SECRET
url=$(function_url CRON_TICK_URL cron-tick)
post_json "$url" x-cron-secret "$CRON_SECRET" "{\"iterations\": $iterations, \"delay\": $delay}"
