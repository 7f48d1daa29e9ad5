#!/usr/bin/env bash
# Benchmark of `localci process`: wall time, process start included, on the largest 2.1
# config of ../shared/conformance (and on the largest one that compiles without errors),
# side by side with `localci --version` as the baseline cost of starting the binary.
# Target: under 50 ms. Usage: bench/process.sh   (builds the release binary if needed)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="$repo/../shared"
[ -d "$shared/conformance" ] || shared="$repo/../../shared"   # a worktree one level deeper
conformance="$shared/conformance"
if [ ! -d "$conformance" ]; then
  echo "no conformance folder next to the repository ($repo/../shared/conformance)" >&2
  exit 1
fi

if ! command -v hyperfine >/dev/null; then
  echo "installing hyperfine (apt)" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq hyperfine >/dev/null
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release/localci"
if [ ! -x "$bin" ] || [ -n "$(find "$repo/src" -newer "$bin" -name '*.rs' -print -quit)" ]; then
  (cd "$repo" && cargo build --release --quiet)
fi

is_21() { grep -qE "version: *['\"]?2\.1|\"version\": *\"?2\.1" "$1"; }

largest=""; largest_ok=""
for f in $(ls -S "$conformance"/valid/* "$conformance"/invalid/*); do
  is_21 "$f" || continue
  [ -z "$largest" ] && largest="$f"
  if [ -z "$largest_ok" ] && "$bin" process -c "$f" >/dev/null 2>&1; then largest_ok="$f"; fi
  [ -n "$largest" ] && [ -n "$largest_ok" ] && break
done

echo "largest 2.1 config:          ${largest#$shared/} ($(wc -c <"$largest") bytes)"
echo "largest one that compiles:   ${largest_ok#$shared/} ($(wc -c <"$largest_ok") bytes)"
json="$(mktemp)"
trap 'rm -f "$json"' EXIT
hyperfine --warmup 5 --min-runs 50 -N -i --export-json "$json" \
  -n "localci --version" "$bin --version" \
  -n "process largest" "$bin process -c $largest" \
  -n "process largest that compiles" "$bin process -c $largest_ok" >&2

python3 - "$json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
for r in results:
    print(f"{r['command']:32} mean {r['mean']*1000:7.2f} ms   max {r['max']*1000:7.2f} ms")
worst = max(r["mean"] for r in results if r["command"].startswith("process"))
print(f"process, mean wall time: {worst*1000:.2f} ms (target < 50 ms): {'OK' if worst < 0.050 else 'TOO SLOW'}")
sys.exit(0 if worst < 0.050 else 1)
PY
