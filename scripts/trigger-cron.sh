#!/usr/bin/env bash
# One POST to cron_tick with {"iterations": N, "delay": MS}, printing its JSON answer.
#   usage: trigger-cron.sh [iterations] [delay_ms]     (defaults 5 and 1000)
#   CRON_SECRET      required
#   CRON_TICK_URL    or SUPABASE_URL (then $SUPABASE_URL/functions/v1/cron-tick)
# Exit status: 0 on a 2xx answer, 1 on any other answer or when every worker_pull call of the
# tick failed, 2 on a missing variable or a bad argument.
set -euo pipefail
# shellcheck source=scripts/lib/post-json.sh
. "$(dirname "$0")/lib/post-json.sh"

number() {
  [[ $1 =~ ^[0-9]{1,9}$ ]] || { echo "trigger-cron.sh: '$1' is not a whole number" >&2; exit 2; }
  echo $((10#$1))  # "05" is 5: JSON allows no leading zero
}
iterations=$(number "${1:-5}")
delay=$(number "${2:-1000}")
[ -n "${CRON_SECRET:-}" ] || die_missing CRON_SECRET
header_safe CRON_SECRET
url=$(function_url CRON_TICK_URL cron-tick)
post_json "$url" x-cron-secret "$CRON_SECRET" "{\"iterations\": $iterations, \"delay\": $delay}"

# A 2xx tick in which every worker_pull call failed processed nothing: say so in the status.
calls=$(sed -n -E 's/.*"calls"[[:space:]]*:[[:space:]]*([0-9]+).*/\1/p' <<<"$POST_JSON_ANSWER")
errors=$(sed -n -E 's/.*"errors"[[:space:]]*:[[:space:]]*([0-9]+).*/\1/p' <<<"$POST_JSON_ANSWER")
if [ -n "$calls" ] && [ "$calls" -gt 0 ] && [ "$errors" = "$calls" ]; then
  echo "trigger-cron.sh: every worker_pull call of this tick failed ($errors of $calls)" >&2
  exit 1
fi
