# Shared by the trigger scripts: one JSON POST with a secret header, the answer on stdout.
# Secrets go to curl on standard input (-H @-), never on its command line where ps shows them.

die_missing() { echo "$(basename "$0"): $1 is not set" >&2; exit 2; }

# function_url VAR SLUG: $VAR, else $SUPABASE_URL/functions/v1/SLUG (the runbook's layout).
function_url() {
  local var=$1 slug=$2
  if [ -n "${!var:-}" ]; then
    printf '%s' "${!var}"
  elif [ -n "${SUPABASE_URL:-}" ]; then
    printf '%s/functions/v1/%s' "${SUPABASE_URL%/}" "$slug"
  else
    die_missing "$var (or SUPABASE_URL)"
  fi
}

# post_json URL HEADER_NAME SECRET BODY: prints the answer; exit 1 unless it is 2xx.
post_json() {
  local url=$1 header=$2 secret=$3 body=$4 answer status
  answer=$(
    {
      printf '%s: %s\n' "$header" "$secret"
      if [ -n "${SUPABASE_SERVICE_ROLE_KEY:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$SUPABASE_SERVICE_ROLE_KEY"
      fi
    } | curl --silent --show-error --max-time "${TRIGGER_TIMEOUT_SECONDS:-300}" \
        -X POST "$url" -H @- -H 'Content-Type: application/json' --data "$body" \
        --write-out '\n%{http_code}'
  ) || { echo "$(basename "$0"): could not reach $url" >&2; exit 1; }
  status=${answer##*$'\n'}
  printf '%s\n' "${answer%$'\n'*}"
  case $status in
    2??) return 0 ;;
    *) echo "$(basename "$0"): $url answered HTTP $status" >&2; exit 1 ;;
  esac
}
