#!/usr/bin/env bash
# Benchmarks of `localci execute` (issue 4), each side by side with a plain
# Docker baseline in the same run, on the local image localci-test/busybox:latest.
#
#   trivial   a job with checkout of a small repo + two `run` steps, against
#             `docker run --rm IMAGE sh -c '...'` running the same commands
#             (bench/trivial.sh: interleaved runs, at least 9; target: localci
#             <= 1.3x the baseline's wall time; prints where localci's time goes)
#   checkout  `checkout` of a generated repo of 10,000 files / 100 MB, against
#             `tar -c . | docker cp - CONTAINER:DIR` (throughput; target >= 80%)
#   cache     save_cache and restore_cache of those 10,000 files / 100 MB, against
#             `docker exec CONTAINER tar -c | zstd` and `zstd -dc | docker cp -`
#             (target: each within 1.5x)
#   memory    peak RSS of localci (/usr/bin/time -v) while saving and restoring
#             a 1 GB cache (target: < 64 MB)
#
# The trivial job is timed whole (wall time). For checkout and the
# caches, the time of the step is the duration localci prints for it
# (`---> passed in 1.234s`), so container start-up is not counted. Their
# baselines run in rounds with localci, one after the other (a warm-up round,
# then RUNS timed rounds; medians), each in a container of its own started
# for it, as localci's are, and timed without the `docker run` that starts it.
# No container is removed before the end: see "fresh inodes" below.
#
# Usage: bench/execute.sh [--check] [trivial|checkout|cache|memory ...]
#   Without names, runs all sections. Each section prints one line per figure:
#     <name>: localci X, baseline Y, ratio Z (target ...) ok|MISSED
#   --check   exit 1 when a target is missed (default: report only)
#
# Environment:
#   LOCALCI   the localci binary (default: a release build, built if missing,
#             in ${CARGO_TARGET_DIR:-target}/release/localci)
#   RUNS      timed runs per command (default 5; one warm-up run is added)
#   TMPDIR    where the generated repos and caches go (about 3 GB for memory);
#             the kept containers take about 4 GB more in Docker's storage
set -euo pipefail

IMAGE=localci-test/busybox:latest
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
CHECK=0
MISSED=0

SCRIPT_NAME=${0##*/}
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

SECTIONS=()
for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        -h | --help) usage; exit 0 ;;
        trivial | checkout | cache | memory) SECTIONS+=("$arg") ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(trivial checkout cache memory)

# --- cleanup: only what this script created --------------------------------
WORK=
CONTAINERS=()
cleanup() {
    local c
    for c in "${CONTAINERS[@]+"${CONTAINERS[@]}"}"; do
        docker rm -f "$c" >/dev/null 2>&1 || true
    done
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- prerequisites ---------------------------------------------------------
need_tool() { # need_tool COMMAND DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing $2 (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$2" \
            >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                    --no-install-recommends "$2" >/dev/null 2>&1; } ||
            die "apt-get install $2 failed"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 is required (Debian package $2)"
}

need_tool docker docker.io
need_tool git git
need_tool python3 python3
need_tool zstd zstd
[ -x /usr/bin/time ] || need_tool /usr/bin/time time
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable ('docker info' fails)"
docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    die "image $IMAGE is missing; build it with: bash tests/images/build.sh busybox"

if [ -z "${LOCALCI:-}" ]; then
    LOCALCI=${CARGO_TARGET_DIR:-$ROOT/target}/release/localci
    log "building $LOCALCI (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet --bin localci) || die "cargo build failed"
fi
[ -x "$LOCALCI" ] || die "LOCALCI=$LOCALCI is not an executable"
LOCALCI=$(cd "$(dirname "$LOCALCI")" && pwd)/$(basename "$LOCALCI")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/localci-bench.XXXXXX")
log "work dir $WORK, $RUNS runs per command, localci $($LOCALCI --version)"

# --- helpers ---------------------------------------------------------------
# commit_repo DIR: git repository with everything in DIR committed.
commit_repo() {
    git -C "$1" init -q -b main
    git -C "$1" add -A
    git -C "$1" -c user.name=bench -c user.email=bench@localci.invalid -c gc.auto=0 \
        -c commit.gpgsign=false commit -q -m bench
}

# start_container NAME: a long-running busybox container for the baselines.
start_container() {
    CONTAINERS+=("$1")
    docker run -d --name "$1" --entrypoint /bin/sh "$IMAGE" -c 'sleep 86400' >/dev/null
}

# generate DIR FILES BYTES_EACH: deterministic incompressible files in DIR/dNN/.
generate() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
root, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(4)
for i in range(files):
    d = os.path.join(root, "d%02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.bin" % i), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

# report NAME LOCALCI_VALUE BASELINE_VALUE UNIT KIND TARGET
#   KIND=max: ratio localci/baseline must be <= TARGET; KIND=min: >= TARGET.
report() {
    local name=$1 ours=$2 base=$3 unit=$4 kind=$5 target=$6 line
    line=$(python3 -c '
import sys
name, ours, base, unit, kind, target = sys.argv[1:]
ours, base, target = float(ours), float(base), float(target)
ratio = ours / base if base > 0 else float("inf")
ok = ratio <= target if kind == "max" else ratio >= target
sign = "<=" if kind == "max" else ">="
print("%s: localci %.3g %s, baseline %.3g %s, ratio %.2f (target %s %.2f) %s"
      % (name, ours, unit, base, unit, ratio, sign, target, "ok" if ok else "MISSED"))
' "$name" "$ours" "$base" "$unit" "$kind" "$target")
    printf '%s\n' "$line"
    case $line in *MISSED) MISSED=$((MISSED + 1)) ;; esac
}

calc() { python3 -c "print($1)"; }

# --- (a) trivial job -------------------------------------------------------
# bench/trivial.sh: localci and `docker run --rm` interleaved, the ratio against its 1.3x
# target, and where localci's time goes (from its timing trace).
bench_trivial() {
    log "trivial: bench/trivial.sh (localci execute trivial vs docker run --rm)"
    local out
    out=$(RUNS=$((RUNS < 9 ? 9 : RUNS)) LOCALCI=$LOCALCI bash "$ROOT/bench/trivial.sh") ||
        die "bench/trivial.sh failed"
    printf '%s\n' "$out"
    case $out in *MISSED*) MISSED=$((MISSED + 1)) ;; esac
}

# --- shared 10,000 files / 100 MB repo for checkout and cache --------------
DATA_FILES=10000
DATA_FILE_BYTES=10240
BIG_REPO=
make_big_repo() {
    [ -n "$BIG_REPO" ] && return 0
    BIG_REPO=$WORK/big-repo
    log "generating $DATA_FILES files of $DATA_FILE_BYTES bytes in $BIG_REPO (and a packed .git)"
    mkdir -p "$BIG_REPO/.circleci"
    generate "$BIG_REPO/data" "$DATA_FILES" "$DATA_FILE_BYTES"
    cat >"$BIG_REPO/.circleci/config.yml" <<EOF
version: 2
jobs:
  checkout-save:
    docker:
      - image: $IMAGE
    steps:
      - checkout
      - save_cache:
          name: Save data
          key: bench-data
          paths:
            - ~/project/data
  restore:
    docker:
      - image: $IMAGE
    steps:
      - restore_cache:
          name: Restore data
          key: bench-data
EOF
    commit_repo "$BIG_REPO"
    # A cloned repository is packed; 10,000 loose objects would be an unusual .git.
    git -C "$BIG_REPO" gc --quiet
}

# run_job REPO JOB OUT [ARGS...]: localci execute, output kept in OUT; must pass.
run_job() {
    local repo=$1 job=$2 out=$3
    shift 3
    (cd "$repo" && "$LOCALCI" --color=never execute "$job" "$@") >"$out" 2>&1 ||
        { tail -n 30 "$out" >&2; die "localci execute $job failed (output above)"; }
}

# median_step STEP FILE...: median of the durations localci printed for STEP
# (`====>> STEP` ... `---> passed in 1.234s`), one per file.
median_step() {
    python3 - "$@" <<'PY'
import re, statistics, sys
UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
def duration(step, path):
    current = None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if line.startswith("====>> "):
            current = line[len("====>> "):]
        elif current == step and line.startswith("---> "):
            text = line.split(" in ", 1)[1].split(",")[0]
            return sum(float(n) * UNIT[u] for n, u in re.findall(r"([0-9.]+)(ms|h|m|s)", text))
    sys.exit("no duration for step %r in %s" % (step, path))
step, paths = sys.argv[1], sys.argv[2:]
runs = [duration(step, p) for p in paths]
print("  localci %s: %s" % (step, " ".join("%.2f" % r for r in runs)), file=sys.stderr)
print(statistics.median(runs))
PY
}

# --- fresh inodes: why no container is removed while measuring -------------
# Docker writes the copied files into the container's layer on the host file
# system. On ext4 without a journal (this benchmark's VM), allocating an inode
# skips, one by one, the inodes freed in the last minute (six while their
# inode table block is not written back; fs/ext4/ialloc.c, recently_deleted),
# so creating 10,000 files right after 10,000 were removed took 2 to 5 times
# longer here (fuse-overlayfs' CPU, nearly all in ext4_create), depending on
# which block groups the new files land in. Removing a container (Docker
# deletes its files on the host) slowed the next copies that much; an `rm -rf`
# inside a container did not, here. Removing each localci job's container
# right before the next run, while the baseline reused one container, made
# localci look twice as slow as the baseline. So every run, localci's and the
# baseline's, copies into a fresh container, and all of them are kept
# (`--keep`) until the script ends.

# keep_containers OUT: remembers the containers a `--keep` run printed.
keep_containers() {
    local ids
    ids=$(awk 'found { print; exit } /^Remove them with:/ { found = 1 }' "$1")
    ids=${ids#*docker rm -f }
    [ -n "$ids" ] || die "no kept containers in $1"
    # shellcheck disable=SC2206 # ids are hex, split on spaces
    CONTAINERS+=($ids)
}

# fresh_container NAME: a new baseline container with /root/project, not timed.
fresh_container() {
    start_container "$1"
    docker exec "$1" mkdir -p /root/project
}

# since START: seconds from START (an $EPOCHREALTIME) to now.
since() {
    local end=$EPOCHREALTIME
    calc "$end - $1"
}

# median_of FILE: the median of the seconds in FILE (one per line); all of them
# go to stderr.
median_of() {
    python3 -c '
import statistics, sys
runs = [float(line) for line in open(sys.argv[1])]
print("  baseline %s: %s" % (sys.argv[1].rsplit("/", 1)[-1][:-4], " ".join("%.2f" % r for r in runs)),
      file=sys.stderr)
print(statistics.median(runs))' "$1"
}

# The rounds of (b) and (c) are shared: each round runs localci's checkout-save
# job (checkout, then save_cache into an empty cache dir), then the baselines of
# both steps, in that order, in one fresh container.
BASE_ARCHIVE=
SAVE_RUNS_DONE=0
run_save_rounds() {
    [ "$SAVE_RUNS_DONE" -eq 1 ] && return 0
    make_big_repo
    BASE_ARCHIVE=$WORK/baseline.tar.zst
    log "checkout and save_cache: 1 + $RUNS rounds of localci, then tar | docker cp and docker exec tar | zstd"
    : >"$WORK/checkout-base.txt"
    : >"$WORK/save-base.txt"
    local i ctr start took
    for i in $(seq 0 "$RUNS"); do
        rm -rf "$WORK/cache"
        run_job "$BIG_REPO" checkout-save "$WORK/save-$i.txt" --keep --cache-dir "$WORK/cache"
        keep_containers "$WORK/save-$i.txt"
        ctr=localci-bench-$$-save-$i
        fresh_container "$ctr"
        start=$EPOCHREALTIME
        (cd "$BIG_REPO" && tar -c . | docker cp - "$ctr:/root/project") ||
            die "baseline checkout failed"
        took=$(since "$start")
        [ "$i" -eq 0 ] || echo "$took" >>"$WORK/checkout-base.txt"
        rm -f "$BASE_ARCHIVE"
        start=$EPOCHREALTIME
        docker exec "$ctr" tar -c -C / root/project/data | zstd -q -T0 -o "$BASE_ARCHIVE" ||
            die "baseline save failed"
        took=$(since "$start")
        [ "$i" -eq 0 ] || echo "$took" >>"$WORK/save-base.txt"
    done
    SAVE_RUNS_DONE=1
}

# timed_outputs PREFIX: the output files of the timed runs (not the warm-up, 0).
timed_outputs() {
    local i
    for i in $(seq 1 "$RUNS"); do printf '%s\n' "$WORK/$1-$i.txt"; done
}

bytes_of() { du -sb "$1" | cut -f1; }

# --- (b) checkout throughput -----------------------------------------------
bench_checkout() {
    run_save_rounds
    local bytes files ours base
    # Both sides send the same tree: the files and .git.
    bytes=$(bytes_of "$BIG_REPO")
    mapfile -t files < <(timed_outputs save)
    ours=$(calc "$bytes / 1e6 / $(median_step "Checkout code" "${files[@]}")")
    base=$(calc "$bytes / 1e6 / $(median_of "$WORK/checkout-base.txt")")
    report "checkout of $DATA_FILES files, $(calc "round($bytes / 1e6)") MB with .git (throughput)" \
        "$ours" "$base" MB/s min 0.8
}

# --- (c) cache save and restore --------------------------------------------
bench_cache() {
    run_save_rounds
    local files i ctr start took
    mapfile -t files < <(timed_outputs save)
    report "cache save of $DATA_FILES files / 100 MB" \
        "$(median_step "Save data" "${files[@]}")" "$(median_of "$WORK/save-base.txt")" s max 1.5

    log "restore_cache: 1 + $RUNS rounds of localci, then zstd -dc | docker cp -"
    : >"$WORK/restore-base.txt"
    for i in $(seq 0 "$RUNS"); do
        run_job "$BIG_REPO" restore "$WORK/restore-$i.txt" --keep --cache-dir "$WORK/cache"
        keep_containers "$WORK/restore-$i.txt"
        ctr=localci-bench-$$-restore-$i
        fresh_container "$ctr"
        start=$EPOCHREALTIME
        zstd -q -dc "$BASE_ARCHIVE" | docker cp - "$ctr:/" || die "baseline restore failed"
        took=$(since "$start")
        [ "$i" -eq 0 ] || echo "$took" >>"$WORK/restore-base.txt"
    done
    mapfile -t files < <(timed_outputs restore)
    report "cache restore of $DATA_FILES files / 100 MB" \
        "$(median_step "Restore data" "${files[@]}")" "$(median_of "$WORK/restore-base.txt")" s max 1.5
}

# --- (d) peak memory with a 1 GB cache -------------------------------------
# max_rss_mb CMD...: peak RSS (MB) of CMD and its children, by /usr/bin/time -v.
max_rss_mb() {
    /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/out.txt" 2>&1 ||
        { cat "$WORK/out.txt" >&2; die "failed: $*"; }
    awk -F': ' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$WORK/time.txt"
}

bench_memory() {
    local repo=$WORK/memory cache=$WORK/memory-cache ctr=localci-bench-$$-memory archive=$WORK/big.tar.zst
    mkdir -p "$repo/.circleci"
    # 16 x 64 MiB of random data: zstd cannot shrink it, so 1 GiB goes through.
    cat >"$repo/.circleci/config.yml" <<EOF
version: 2
jobs:
  save-1g:
    docker:
      - image: $IMAGE
    steps:
      - run:
          name: Generate 1 GiB
          command: |
            mkdir -p ~/big
            for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
              head -c 67108864 /dev/urandom > ~/big/part\$i
            done
      - save_cache:
          key: bench-1g
          paths:
            - ~/big
  restore-1g:
    docker:
      - image: $IMAGE
    steps:
      - restore_cache:
          key: bench-1g
      - run: du -sm ~/big
EOF
    commit_repo "$repo"
    start_container "$ctr"
    docker exec "$ctr" sh -c 'mkdir -p /root/big && for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15;
        do head -c 67108864 /dev/urandom > /root/big/part$i; done'

    log "memory: saving a 1 GiB cache"
    local ours base
    ours=$(cd "$repo" && max_rss_mb "$LOCALCI" --color=never execute save-1g --cache-dir "$cache")
    base=$(max_rss_mb sh -c "docker exec $ctr tar -c -C / root/big | zstd -q -T0 -o $archive")
    report_memory "peak memory, save of a 1 GiB cache" "$ours" "$base"

    log "memory: restoring a 1 GiB cache"
    docker exec "$ctr" rm -rf /root/big
    ours=$(cd "$repo" && max_rss_mb "$LOCALCI" --color=never execute restore-1g --cache-dir "$cache")
    base=$(max_rss_mb sh -c "zstd -q -dc $archive | docker cp - $ctr:/")
    report_memory "peak memory, restore of a 1 GiB cache" "$ours" "$base"
}

# report_memory NAME LOCALCI_MB BASELINE_MB: the target is absolute (< 64 MB).
report_memory() {
    local line
    line=$(python3 -c '
import sys
name, ours, base = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print("%s: localci %.1f MB, baseline %.1f MB, ratio %.2f (target localci < 64 MB) %s"
      % (name, ours, base, ours / base, "ok" if ours < 64 else "MISSED"))
' "$1" "$2" "$3")
    printf '%s\n' "$line"
    case $line in *MISSED) MISSED=$((MISSED + 1)) ;; esac
}

for section in "${SECTIONS[@]}"; do
    "bench_$section"
done

if [ "$MISSED" -gt 0 ]; then
    log "$MISSED target(s) missed"
    [ "$CHECK" -eq 0 ] || exit 1
fi
