#!/usr/bin/env bash
# Benchmark `localci validate` with process start included: the largest config of the
# conformance suite (or the file given as $1), measured by hyperfine side by side with
# `localci --version`, which is the cost of starting the process at all.
#
# usage: bench/validate.sh [CONFIG]
# Prints the mean wall time and exits 1 when it is over the 30 ms budget of issue 2.
set -euo pipefail

budget_ms=30
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The suite lives in shared/ next to the repository (or next to a parent folder for worktrees).
find_suite() {
  local dir=$root
  while [ "$dir" != / ]; do
    dir=$(dirname "$dir")
    if [ -d "$dir/shared/conformance" ]; then
      echo "$dir/shared/conformance"
      return 0
    fi
  done
  return 1
}

if [ $# -ge 1 ]; then
  config=$1
else
  suite=$(find_suite) || { echo "no shared/conformance folder found; pass a config: $0 CONFIG" >&2; exit 2; }
  config=$(ls -S "$suite"/valid/* "$suite"/invalid/* | head -n 1)
fi

echo "building release binary..." >&2
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/localci"

if ! command -v hyperfine >/dev/null 2>&1; then
  echo "installing hyperfine..." >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y hyperfine >&2
  else
    sudo apt-get install -y hyperfine >&2
  fi
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
echo "config: $config ($(wc -c <"$config") bytes)"
# -N: no intermediate shell, so the figures are the process itself; -i: invalid configs exit 2.
hyperfine -N -i --warmup 10 --runs 200 --export-json "$report" \
  -n "process start (localci --version)" "$bin --version" \
  -n "localci validate" "$bin validate -c $config"

python3 - "$report" "$budget_ms" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
budget = float(sys.argv[2])
start = results["process start (localci --version)"]["mean"] * 1000
validate = results["localci validate"]
mean, worst = validate["mean"] * 1000, validate["max"] * 1000
verdict = "within" if mean < budget else "OVER"
print(f"validate: {mean:.1f} ms mean, {worst:.1f} ms max, process start alone {start:.1f} ms "
      f"-> {verdict} the {budget:.0f} ms budget")
sys.exit(0 if mean < budget else 1)
PY
