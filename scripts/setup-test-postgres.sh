#!/usr/bin/env bash
# What the tests need beside the local PostgreSQL (127.0.0.1:5432, Debian packaging): pg_cron and
# PL/Python for the tests that prove scheduling from the database, PgBouncer for the one that
# proves worker_pull safe behind a transaction-mode pooler, and, where ../shared/third_party is
# present, Supabase's real pg_net and supabase_vault built from source. Installs Debian's
# packages for the running server's major version, preloads pg_cron (cron.database_name =
# jobqueue_cron), pg_net (pg_net.database_name = jobqueue_cron: its worker serves that database)
# and supabase_vault (a fixed test key), and restarts the server. Needs root and apt; elsewhere it
# says what it could not do and those tests skip (CI sets JOBQUEUE_NO_SKIP=1, so there they fail
# instead).
set -euo pipefail

PSQL=(psql -h 127.0.0.1 -U postgres -d postgres -X -At)
CRON_DB=jobqueue_cron

if ! "${PSQL[@]}" -c "select 1" >/dev/null 2>&1; then
  echo "setup-test-postgres.sh: no PostgreSQL at 127.0.0.1:5432; skipping" >&2
  exit 0
fi
major=$("${PSQL[@]}" -c "select current_setting('server_version_num')::int / 10000")
packages=("postgresql-$major" "postgresql-$major-cron" "postgresql-plpython3-$major" pgbouncer)

if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup-test-postgres.sh: needs root and apt-get to install ${packages[*]}; skipping" >&2
    exit 0
  fi
  # The server package comes along so its minor version matches the extensions' (an older
  # server fails to load a newer PL/Python with 'undefined symbol').
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi

wanted=(pg_cron)
third_party="$(cd "$(dirname "$0")/.." && pwd)/../shared/third_party"
conf_dir="$(dirname "$("${PSQL[@]}" -c "show config_file")")/conf.d"
extra_settings=""
if [ -x "$third_party/build-extensions.sh" ] || [ -f "$third_party/build-extensions.sh" ]; then
  bash "$third_party/build-extensions.sh" "$major"
  wanted+=(pg_net supabase_vault)
  # Vault's root key comes from a script; a fixed key is fine for tests.
  key_script="$conf_dir/jobqueue-vault-key.sh"
  mkdir -p "$conf_dir"
  printf '#!/bin/sh\necho %s\n' "$(printf '0123456789abcdef%.0s' 1 2 3 4)" > "$key_script"
  chmod 755 "$key_script"
  extra_settings="pg_net.database_name = '$CRON_DB'
vault.getkey_script = '$key_script'"
fi

preload=$("${PSQL[@]}" -c "show shared_preload_libraries")
database=$("${PSQL[@]}" -c "select coalesce(current_setting('cron.database_name', true), '')")
missing=()
for library in "${wanted[@]}"; do
  [[ ",${preload// /}," == *",$library,"* ]] || missing+=("$library")
done
if [ "${#missing[@]}" -gt 0 ] || [ "$database" != "$CRON_DB" ]; then
  # A file of its own in the cluster's conf.d (Debian's postgresql.conf includes it).
  mkdir -p "$conf_dir"
  libraries=$(IFS=,; echo "${preload:+$preload,}${missing[*]}")
  libraries=${libraries#,}
  printf "shared_preload_libraries = '%s'\ncron.database_name = '%s'\n%s\n" \
    "$libraries" "$CRON_DB" "$extra_settings" > "$conf_dir/jobqueue-pg-cron.conf"
  pg_ctlcluster --skip-systemctl-redirect "$major" main restart
  for _ in $(seq 1 60); do
    "${PSQL[@]}" -c "select 1" >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
"${PSQL[@]}" -c "select 1 from pg_database where datname = '$CRON_DB'" | grep -q 1 \
  || "${PSQL[@]}" -c "create database $CRON_DB" >/dev/null
echo "setup-test-postgres.sh: preloaded ${wanted[*]} (serving $CRON_DB); PL/Python and PgBouncer installed"
