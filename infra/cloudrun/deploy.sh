#!/usr/bin/env bash
# Deploys worker_pull and cron_tick to Cloud Run from their source folders, and a Cloud Scheduler
# job that POSTs to cron_tick every minute. worker_pull is private: only cron_tick's service
# account may invoke it (cron_tick sends a Google-signed ID token as well as the secret).
# docs/deploy-cloud-run.md walks through it; run from the repo root after
#   scripts/build-bundles.sh dist
# and after storing the secrets in Secret Manager (names below; values never on a command line):
#   jobqueue-database-url, jobqueue-job-worker-secret, jobqueue-cron-secret
# Variables: PROJECT (required), REGION (default us-central1), DIST (default dist),
#   PYTHON_BASE_IMAGE (default python313), TICK_BODY (default {"iterations":5,"delay":500,"max_jobs":100})
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${PROJECT:?set PROJECT to your Google Cloud project id}"
region=${REGION:-us-central1}
dist=${DIST:-dist}
base_image=${PYTHON_BASE_IMAGE:-python313}
tick_body=${TICK_BODY:-'{"iterations": 5, "delay": 500, "max_jobs": 100}'}
for folder in "$dist/worker_pull" "$dist/cron_tick"; do
  [ -f "$folder/main.py" ] || { echo "deploy.sh: $folder is missing: run scripts/build-bundles.sh $dist" >&2; exit 2; }
done

gcloud=(gcloud --project "$PROJECT" --quiet)
runner_sa="jobqueue-cron-tick@$PROJECT.iam.gserviceaccount.com"
scheduler_sa="jobqueue-scheduler@$PROJECT.iam.gserviceaccount.com"
for account in jobqueue-cron-tick jobqueue-scheduler jobqueue-worker-pull; do
  "${gcloud[@]}" iam service-accounts describe "$account@$PROJECT.iam.gserviceaccount.com" >/dev/null 2>&1 \
    || "${gcloud[@]}" iam service-accounts create "$account" --display-name "$account"
done
worker_sa="jobqueue-worker-pull@$PROJECT.iam.gserviceaccount.com"
for pair in "jobqueue-database-url:$worker_sa" "jobqueue-job-worker-secret:$worker_sa" \
            "jobqueue-job-worker-secret:$runner_sa" "jobqueue-cron-secret:$runner_sa"; do
  "${gcloud[@]}" secrets add-iam-policy-binding "${pair%%:*}" \
    --member "serviceAccount:${pair#*:}" --role roles/secretmanager.secretAccessor >/dev/null
done

# worker_pull: a call claims nothing new after 60 s and a job may run 60 s more: 150 s covers it.
"${gcloud[@]}" run deploy worker-pull --source "$dist/worker_pull" --function worker_pull \
  --base-image "$base_image" --region "$region" --no-allow-unauthenticated \
  --service-account "$worker_sa" --timeout 150 --memory 512Mi --concurrency 8 \
  --set-secrets DATABASE_URL=jobqueue-database-url:latest,JOB_WORKER_SECRET=jobqueue-job-worker-secret:latest \
  --set-env-vars WORKER_PULL_TIME_BUDGET_SECONDS=60,JOB_HANDLER_TIMEOUT_SECONDS=60
worker_url=$("${gcloud[@]}" run services describe worker-pull --region "$region" --format 'value(status.url)')
"${gcloud[@]}" run services add-iam-policy-binding worker-pull --region "$region" \
  --member "serviceAccount:$runner_sa" --role roles/run.invoker >/dev/null

# cron_tick: no call starts after 120 s and each ends within 150 s: 300 s covers both.
"${gcloud[@]}" run deploy cron-tick --source "$dist/cron_tick" --function cron_tick \
  --base-image "$base_image" --region "$region" --no-allow-unauthenticated \
  --service-account "$runner_sa" --timeout 300 --memory 256Mi \
  --set-secrets CRON_SECRET=jobqueue-cron-secret:latest,JOB_WORKER_SECRET=jobqueue-job-worker-secret:latest \
  --set-env-vars "WORKER_PULL_URL=$worker_url,WORKER_PULL_ID_TOKEN_AUDIENCE=$worker_url,WORKER_PULL_TIMEOUT_SECONDS=150,CRON_TICK_BUDGET_SECONDS=120"
cron_url=$("${gcloud[@]}" run services describe cron-tick --region "$region" --format 'value(status.url)')
"${gcloud[@]}" run services add-iam-policy-binding cron-tick --region "$region" \
  --member "serviceAccount:$scheduler_sa" --role roles/run.invoker >/dev/null

# Cloud Scheduler: every minute, with x-cron-secret read from Secret Manager here and sent as a
# header file, never an argument (ps would show it).
headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
chmod 600 "$headers"
{
  printf 'Content-Type=application/json,x-cron-secret='
  "${gcloud[@]}" secrets versions access latest --secret jobqueue-cron-secret
} > "$headers"
verb=create headers_flag=--headers
if "${gcloud[@]}" scheduler jobs describe process-queued-jobs --location "$region" >/dev/null 2>&1; then
  verb=update headers_flag=--update-headers
fi
flags=$(mktemp)
trap 'rm -f "$headers" "$flags"' EXIT
chmod 600 "$flags"
printf -- '%s: "%s"\n' "$headers_flag" "$(cat "$headers")" > "$flags"
"${gcloud[@]}" scheduler jobs "$verb" http process-queued-jobs --location "$region" \
  --schedule '* * * * *' --uri "$cron_url" --http-method POST \
  --message-body "$tick_body" --flags-file "$flags" \
  --oidc-service-account-email "$scheduler_sa" --oidc-token-audience "$cron_url" \
  --attempt-deadline 300s

echo "worker_pull: $worker_url"
echo "cron_tick:   $cron_url   (CRON_TICK_URL for scripts/trigger-cron.sh and pg_cron)"
