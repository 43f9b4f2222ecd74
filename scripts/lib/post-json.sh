# shellcheck shell=bash
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

# header_safe NAME: exit 2 unless $NAME is printable ASCII without spaces; a newline in it would
# add a header line of its own to the request.
header_safe() {
  local value=${!1}
  if [[ ! $value =~ ^[!-~]+$ ]]; then
    echo "$(basename "$0"): $1 must be printable ASCII without spaces or newlines" >&2
    exit 2
  fi
}

# post_json URL HEADER_NAME SECRET BODY: prints the answer; exit 1 unless it is 2xx.
# The answer is left in POST_JSON_ANSWER for the caller to inspect.
post_json() {
  local url=$1 header=$2 secret=$3 body=$4 answer status
  if [ -n "${SUPABASE_SERVICE_ROLE_KEY:-}" ]; then header_safe SUPABASE_SERVICE_ROLE_KEY; fi
  if [ -n "${SUPABASE_SECRET_KEY:-}" ]; then header_safe SUPABASE_SECRET_KEY; fi
  answer=$(
    {
      printf '%s: %s\n' "$header" "$secret"
      # The legacy JWT key as a bearer token (what Supabase's gateway expects of it); a new
      # sb_secret_ key only as apikey, since Supabase refuses it as a bearer token.
      if [ -n "${SUPABASE_SERVICE_ROLE_KEY:-}" ]; then
        printf 'Authorization: Bearer %s\n' "$SUPABASE_SERVICE_ROLE_KEY"
      fi
      if [ -n "${SUPABASE_SECRET_KEY:-}" ]; then
        printf 'apikey: %s\n' "$SUPABASE_SECRET_KEY"
      fi
    } | curl --silent --show-error --max-time "${TRIGGER_TIMEOUT_SECONDS:-300}" \
        -X POST "$url" -H @- -H 'Content-Type: application/json' --data "$body" \
        --write-out '\n%{http_code}'
  ) || { echo "$(basename "$0"): could not reach $url" >&2; exit 1; }
  status=${answer##*$'\n'}
  POST_JSON_ANSWER=${answer%$'\n'*}
  printf '%s\n' "$POST_JSON_ANSWER"
  case $status in
    2??) return 0 ;;
    *) echo "$(basename "$0"): $url answered HTTP $status" >&2; exit 1 ;;
  esac
}
