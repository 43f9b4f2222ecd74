#!/usr/bin/env bash
# Builds each function's deployable bundles (README, "Deploying"):
#   OUT_DIR/F/             source folder for Cloud Run / Cloud Functions: main.py, the jobqueue
#                          package, and requirements.txt pinning F's whole run-time closure
#   OUT_DIR/F-lambda.zip   Lambda package: the same code and every dependency at the zip's root,
#                          from manylinux wheels the x86_64 Lambda runtime of this Python loads;
#                          no functions-framework, Flask or gunicorn
# usage: scripts/build-bundles.sh [OUT_DIR]      (default dist), from the repo root, after
#        pip install -r requirements.txt (the pins are read from what that installed).
# The zips are for the Python that infra/aws/template.yaml deploys (its PythonRuntime default),
# whatever interpreter runs this script, so the zips and the template never disagree;
# LAMBDA_PYTHON_VERSION=3.12 builds them for another (same pins, that version's wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
python=${PYTHON:-python3}
template_runtime=$("$python" scripts/lib/bundle.py template-runtime infra/aws/template.yaml)
version=${LAMBDA_PYTHON_VERSION:-$template_runtime}
[[ $version =~ ^3\.[0-9]+$ ]] || { echo "build-bundles.sh: LAMBDA_PYTHON_VERSION must look like 3.13" >&2; exit 2; }
minor=${version#*.}
# The glibc of the Lambda runtime for this Python: 2.26 (Amazon Linux 2) up to 3.11, 2.34 after.
max_glibc=26
[ "$minor" -ge 12 ] && max_glibc=34
platforms=(--platform manylinux2014_x86_64)
for glibc in $(seq 17 "$max_glibc"); do
  platforms+=(--platform "manylinux_2_${glibc}_x86_64")
done

copy_code() {  # copy_code FUNCTION DEST: main.py and exactly what it imports of jobqueue
  mkdir -p "$2"
  cp "functions/$1/main.py" "$2/main.py"
  "$python" scripts/lib/bundle.py modules "functions/$1/main.py" | while read -r file; do
    mkdir -p "$2/$(dirname "$file")"
    cp "src/$file" "$2/$file"
  done
}

mkdir -p "$out"
for function in cron_tick worker_pull; do
  folder="$out/$function"
  rm -rf "$folder" "$out/$function-lambda.zip"
  copy_code "$function" "$folder"
  {
    echo "# $function's run-time closure, pinned by scripts/build-bundles.sh"
    "$python" scripts/lib/bundle.py requirements "functions/$function/requirements.txt"
  } > "$folder/requirements.txt"

  stage=$(mktemp -d)
  copy_code "$function" "$stage"
  "$python" scripts/lib/bundle.py requirements "functions/$function/requirements.txt" \
    --without functions-framework --without google-auth --without requests \
    > "$stage/.requirements"
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
    --target "$stage" --implementation cp --python-version "$version" --only-binary=:all: \
    "${platforms[@]}" -r "$stage/.requirements"
  rm -f "$stage/.requirements"
  rm -rf "${stage:?}/bin"
  "$python" scripts/lib/bundle.py zip "$stage" "$out/$function-lambda.zip"
  rm -rf "$stage"
  echo "built $folder/ and $out/$function-lambda.zip (Lambda Python $version)"
done
