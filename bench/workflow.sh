#!/usr/bin/env bash
# Benchmark of the workflow scheduler (issue 7): a workflow of jobs that only sleep, on the
# local image localci-test/busybox:latest, run with `localci execute -j 4`:
#
#   A -> B -> C -> D   1 s each (a chain)
#   X (4 s) -> Y (0 s)
#
# Its critical path is 4 s (the chain, and X + Y); a stage-by-stage scheduler (act,
# gitlab-ci-local: every job of a stage waits for the whole previous stage) takes 7 s
# (stages {A, X}, {B, Y}, {C}, {D} of 4 + 1 + 1 + 1 s). Target: the whole workflow within
# the critical path plus 1.5 s, container start-up included.
#
# Side by side in one run, each timed RUNS times (medians):
#   localci   the makespan of `localci execute --workflow bench -j 4` (wall time)
#   critical  the critical path measured the same way: the longest chain alone as a
#             workflow (A -> B -> C -> D) run by localci, so start-up costs count the same
#   stages    the same jobs as plain `docker run --rm` commands, stage by stage in
#             parallel within each stage, as a stage scheduler would run them
#
# Prints: makespan, critical path (4 s of sleeps), overhead (makespan - 4 s) and the
# stage-by-stage baseline. Usage: bench/workflow.sh [--check]   (--check: exit 1 on a miss)
#
# Environment: LOCALCI (default: a release build, built if missing), RUNS (default 5).
set -euo pipefail

IMAGE=localci-test/busybox:latest
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
CHECK=0
[ "${1:-}" = --check ] && CHECK=1

die() { printf 'workflow.sh: ERROR: %s\n' "$*" >&2; exit 2; }
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "$IMAGE missing: bash tests/images/build.sh busybox"

LOCALCI=${LOCALCI:-${CARGO_TARGET_DIR:-$ROOT/target}/release/localci}
if [ ! -x "$LOCALCI" ]; then
    (cd "$ROOT" && cargo build --release --quiet) || die "cargo build --release failed"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

job() { printf '  %s:\n    docker: [{image: %s}]\n    steps:\n      - run: sleep %s\n' "$1" "$IMAGE" "$2"; }
project() { # project DIR WORKFLOW-JOBS JOB-DEFINITIONS
    mkdir -p "$1/.circleci"
    printf 'version: 2.1\njobs:\n%sworkflows:\n  bench:\n    jobs:\n%s' "$3" "$2" >"$1/.circleci/config.yml"
    git -C "$1" init -q -b main
    git -C "$1" add -A
    git -C "$1" -c user.name=bench -c user.email=bench@localci commit -q -m bench
}
JOBS=""
for spec in "a 1" "b 1" "c 1" "d 1" "x 4" "y 0"; do
    # shellcheck disable=SC2086 # two words: name and seconds
    JOBS+="$(job $spec)"$'\n'
done
project "$WORK/full" "      - a
      - b: {requires: [a]}
      - c: {requires: [b]}
      - d: {requires: [c]}
      - x
      - y: {requires: [x]}
" "$JOBS"
project "$WORK/chain" "      - a
      - b: {requires: [a]}
      - c: {requires: [b]}
      - d: {requires: [c]}
" "$JOBS"

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

time_localci() { # time_localci DIR
    local t0 t1
    t0=$(now)
    (cd "$1" && "$LOCALCI" execute --workflow bench -j 4 --color never >"$1.log" 2>&1) || die "localci failed in $1: $(tail -5 "$1.log")"
    t1=$(now)
    elapsed "$t0" "$t1"
}

stage() { # stage "SECONDS..." : docker run each in parallel, wait for all
    local pids=() s
    for s in "$@"; do
        docker run --rm --label localci-bench=1 "$IMAGE" sleep "$s" >/dev/null &
        pids+=($!)
    done
    wait "${pids[@]}"
}
time_stages() {
    local t0 t1
    t0=$(now)
    stage 1 4; stage 1 0; stage 1; stage 1
    t1=$(now)
    elapsed "$t0" "$t1"
}

# A warm-up round, then RUNS timed rounds; each round runs the three side by side.
time_localci "$WORK/full" >/dev/null; time_localci "$WORK/chain" >/dev/null; time_stages >/dev/null
: >"$WORK/full.t"; : >"$WORK/chain.t"; : >"$WORK/stages.t"
for _ in $(seq "$RUNS"); do
    time_localci "$WORK/full" >>"$WORK/full.t"
    time_localci "$WORK/chain" >>"$WORK/chain.t"
    time_stages >>"$WORK/stages.t"
done
full=$(median <"$WORK/full.t")
chain=$(median <"$WORK/chain.t")
stages=$(median <"$WORK/stages.t")
overhead=$(echo "$full - 4" | bc -l)
budget=5.5
verdict=ok
[ "$(echo "$full <= $budget" | bc -l)" = 1 ] || verdict=MISSED
printf 'workflow makespan: localci %.2fs (critical path 4s of sleeps; the chain alone under localci %.2fs)\n' "$full" "$chain"
printf 'overhead: %.2fs over the critical path (target: makespan <= 4 + 1.5 = %.1fs) %s\n' "$overhead" "$budget" "$verdict"
printf 'stage-by-stage baseline (docker run per job, stage barriers): %.2fs\n' "$stages"
[ "$CHECK" = 1 ] && [ "$verdict" = MISSED ] && exit 1
exit 0
