#!/usr/bin/env bash
# One POST to worker_pull, printing its JSON answer.
#   JOB_WORKER_SECRET   required
#   WORKER_PULL_URL     or SUPABASE_URL (then $SUPABASE_URL/functions/v1/worker-pull)
# Optional first argument: the JSON body (default {}), e.g. '{"max_jobs": 10}'.
set -euo pipefail
# shellcheck source=scripts/lib/post-json.sh
. "$(dirname "$0")/lib/post-json.sh"

[ -n "${JOB_WORKER_SECRET:-}" ] || die_missing JOB_WORKER_SECRET
header_safe JOB_WORKER_SECRET
url=$(function_url WORKER_PULL_URL worker-pull)
post_json "$url" x-job-worker-secret "$JOB_WORKER_SECRET" "${1:-{\}}"
