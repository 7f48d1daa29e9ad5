#!/usr/bin/env bash
# Memory and time bounds of `localci validate` and `localci process` (issue 9, finding 3): the
# promise is under 256 MB and 2 s on any input up to the 64 MB input limit, release build.
#
# usage: bench/bounds.sh [--check] [--runs N] [--instructions] [--keep DIR] [NAME ...]
#
# Writes the hostile inputs of bench/big_config.py into a temporary folder (or DIR with --keep,
# reused when it already holds them), runs both commands of the release binary on each N times
# (default 3) under `/usr/bin/time -v`, and prints a table: exit code, peak RSS (the largest of
# the runs), wall time and CPU time (medians), against the budget. --check exits 1 when the
# memory or the wall time is over it, or a run crashed (exit above 2). --instructions also
# counts the instructions of one run of each under `valgrind --tool=callgrind` (slow, but
# independent of the load of a shared machine: use it to compare before and after a change).
# NAMEs pick inputs (see bench/big_config.py).
set -euo pipefail

budget_mb=256
budget_s=2
runs=3
check=0
instructions=0
keep=""
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check=1 ;;
    --runs) runs=$2; shift ;;
    --instructions) instructions=1 ;;
    --keep) keep=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done

repo="$(cd "$(dirname "$0")/.." && pwd)"
[ -x /usr/bin/time ] || { echo "/usr/bin/time (GNU time) is needed: apt-get install time" >&2; exit 2; }
if [ "$instructions" = 1 ] && ! command -v valgrind >/dev/null; then
  echo "--instructions needs valgrind: apt-get install valgrind" >&2; exit 2
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
bin="$target/release/localci"
if [ ! -x "$bin" ] || [ -n "$(find "$repo/src" -newer "$bin" -name '*.rs' -print -quit)" ]; then
  echo "building the release binary..." >&2
  (cd "$repo" && nice -n 10 cargo build --release --quiet)
fi

if [ -n "$keep" ]; then
  dir=$keep
else
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
[ ${#names[@]} -eq 0 ] && mapfile -t names < <(python3 - "$repo/bench" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import big_config
print("\n".join(big_config.INPUTS))
PY
)
missing=()
for name in "${names[@]}"; do [ -s "$dir/$name.yml" ] || missing+=("$name"); done
[ ${#missing[@]} -eq 0 ] || python3 "$repo/bench/big_config.py" "$dir" "${missing[@]}"

# One run: prints "exit rss_kb wall_s cpu_s" (cpu: user + system, which a loaded machine
# inflates less than the wall time).
measure() {
  local report out code
  report=$(mktemp)
  set +e
  /usr/bin/time -v -o "$report" "$bin" "$1" -c "$2" >/dev/null 2>&1
  code=$?
  set -e
  out=$(awk -F': ' '
    /Exit status/ { if (code == "") code = $2 }
    /Command terminated by signal/ { split($0, w, " "); code = 128 + w[length(w)] }
    /Maximum resident set size/ { rss = $2 }
    /User time \(seconds\)/ { cpu += $2 }
    /System time \(seconds\)/ { cpu += $2 }
    /Elapsed \(wall clock\)/ {
      n = split($2, t, ":"); s = 0
      for (i = 1; i <= n; i++) s = s * 60 + t[i]
      wall = s
    }
    END { print code, rss, wall, cpu }' "$report")
  rm -f "$report"
  # A killed run is 128 + the signal, as a shell reports it.
  [ -n "${out%% *}" ] && echo "$out" || echo "$code ${out#* }"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

instr() {
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" -c "$2" >/dev/null 2>&1 || true
  awk '/^summary:|^totals:/ { print $2; exit }' "$out"
  rm -f "$out"
}

over=0
printf '%-14s %8s  %-9s %5s %9s %8s %8s' input size command exit "peak RSS" "wall" "cpu"
[ "$instructions" = 1 ] && printf ' %16s' instructions
printf '  %s\n' "budget ${budget_mb} MB / ${budget_s} s"
for name in "${names[@]}"; do
  file="$dir/$name.yml"
  size=$(awk -v b="$(wc -c <"$file")" 'BEGIN { printf "%.1f MB", b / 1e6 }')
  for command in validate process; do
    rss=0; walls=(); cpus=(); code=""
    for _ in $(seq "$runs"); do
      read -r c r w u < <(measure "$command" "$file")
      code=$c
      [ "$r" -gt "$rss" ] && rss=$r
      walls+=("$w")
      cpus+=("$u")
    done
    wall=$(printf '%s\n' "${walls[@]}" | median)
    cpu=$(printf '%s\n' "${cpus[@]}" | median)
    verdict=ok
    if [ "$code" -gt 2 ] || [ "$rss" -gt $((budget_mb * 1024)) ] || awk -v w="$wall" -v b="$budget_s" 'BEGIN { exit !(w >= b) }'; then
      verdict=OVER
      over=1
    fi
    printf '%-14s %8s  %-9s %5s %6d MB %6.2f s %6.2f s' "$name" "$size" "$command" "$code" $((rss / 1024)) "$wall" "$cpu"
    [ "$instructions" = 1 ] && printf ' %16s' "$(instr "$command" "$file")"
    printf '  %s\n' "$verdict"
  done
done
echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
if [ "$check" = 1 ] && [ "$over" = 1 ]; then
  echo "over the budget of ${budget_mb} MB / ${budget_s} s (or a crash: exit above 2)" >&2
  exit 1
fi
