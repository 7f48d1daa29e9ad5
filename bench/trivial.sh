#!/usr/bin/env bash
# Benchmark of a trivial job (issue 10, Speed): `checkout` of a small repository and two
# `run` steps on localci-test/busybox:latest, against a raw
#
#   docker run --rm IMAGE sh -c 'mkdir -p ~/project && cd ~/project && STEP1 && STEP2'
#
# of the same commands. Target: localci's wall time at most 1.3x the baseline's.
#
# Both run interleaved in one run: a warm-up pair, then RUNS timed pairs (the order inside
# a round rotates, so a drift of the machine's load hits every side alike); medians. Each
# run starts once the engine has removed the containers of the one before (localci leaves
# its primary's removal to the engine): no run pays for another's.
# With BEFORE=/path/to/an/older/localci, that binary runs in the same rounds too, so a
# change is measured before/after side by side.
#
# It then prints where localci's time goes, from its timing trace (LOCALCI_TRACE, one per
# run; docs/execute.md "Timing trace"): the median start and duration of each phase and of
# each request to Docker (create, start, each exec round trip, uploads, the removal), and
# the time outside `execute` (process start-up and exit).
#
# Usage: bench/trivial.sh [--check]   (--check: exit 1 when the target is missed)
# Environment:
#   LOCALCI   the localci binary (default: a release build, built if missing, in
#             ${CARGO_TARGET_DIR:-target}/release/localci)
#   BEFORE    an older localci binary to time in the same rounds (optional)
#   RUNS      timed pairs (default 9)
#   TARGET    the ratio to meet (default 1.3)
set -euo pipefail

IMAGE=localci-test/busybox:latest
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-9}
TARGET=${TARGET:-1.3}
CHECK=0
case ${1:-} in
    --check) CHECK=1 ;;
    "") ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) printf 'trivial.sh: unknown argument: %s\n' "$1" >&2; exit 2 ;;
esac

die() { printf 'trivial.sh: ERROR: %s\n' "$*" >&2; exit 2; }
for tool in docker git python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable ('docker info' fails)"
docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    die "image $IMAGE is missing; build it with: bash tests/images/build.sh busybox"

LOCALCI=${LOCALCI:-${CARGO_TARGET_DIR:-$ROOT/target}/release/localci}
if [ ! -x "$LOCALCI" ]; then
    printf 'trivial.sh: building %s (cargo build --release)\n' "$LOCALCI" >&2
    (cd "$ROOT" && cargo build --release --quiet --bin localci) || die "cargo build failed"
fi
[ -x "$LOCALCI" ] || die "LOCALCI=$LOCALCI is not an executable"
LOCALCI=$(cd "$(dirname "$LOCALCI")" && pwd)/$(basename "$LOCALCI")
if [ -n "${BEFORE:-}" ]; then
    [ -x "$BEFORE" ] || die "BEFORE=$BEFORE is not an executable"
    BEFORE=$(cd "$(dirname "$BEFORE")" && pwd)/$(basename "$BEFORE")
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/localci-trivial.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# shellcheck disable=SC2016 # expanded in the container
STEP1='echo "step one in $(pwd)"'
STEP2='ls -la'
REPO=$WORK/repo
mkdir -p "$REPO/.circleci" "$REPO/src"
printf '# trivial\n' >"$REPO/README.md"
printf 'echo hi\n' >"$REPO/src/hello.sh"
cat >"$REPO/.circleci/config.yml" <<EOF
version: 2
jobs:
  trivial:
    docker:
      - image: $IMAGE
    steps:
      - checkout
      - run: $STEP1
      - run: $STEP2
EOF
git -C "$REPO" init -q -b main
git -C "$REPO" add -A
git -C "$REPO" -c user.name=bench -c user.email=bench@localci.invalid -c commit.gpgsign=false \
    commit -q -m bench

printf 'trivial.sh: localci %s, %s timed pairs (+1 warm-up), image %s\n' \
    "$("$LOCALCI" --version)" "$RUNS" "$IMAGE" >&2

python3 - "$WORK" "$REPO" "$LOCALCI" "${BEFORE:-}" "$IMAGE" "$RUNS" "$TARGET" "$CHECK" \
    "mkdir -p ~/project && cd ~/project && $STEP1 && $STEP2" <<'PY'
import os, re, statistics, subprocess, sys, time

work, repo, localci, before, image, runs, target, check, script = sys.argv[1:]
runs, target, check = int(runs), float(target), check == "1"

def run(name, argv, cwd, env=None):
    """Runs one command; returns its wall time in seconds. Its output must show that the
    job really ran: the output line of the first step (not the echoed command)."""
    start = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if p.returncode != 0 or not re.search(r"^step one in /\S*project\s*$", p.stdout, re.M):
        sys.exit("trivial.sh: %s failed (exit %d):\n%s" % (name, p.returncode, p.stdout))
    return wall

def localci_run(binary, trace):
    env = dict(os.environ)
    env.pop("LOCALCI_TRACE", None)
    if trace:
        env["LOCALCI_TRACE"] = trace
    return run(binary, [binary, "--color=never", "execute", "trivial"], repo, env)

sides = [("localci", lambda i: localci_run(localci, "%s/trace-%d.tsv" % (work, i)))]
if before:
    sides.append(("before", lambda i: localci_run(before, None)))
sides.append(("docker run", lambda i: run("docker run --rm",
             ["docker", "run", "--rm", image, "sh", "-c", script], work)))

def settle():
    """Waits, untimed, until the engine has removed the containers of the last run (localci
    leaves its primary's removal to the engine and exits): every run starts on an idle
    engine instead of paying for its predecessor's removal."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = subprocess.run(["docker", "ps", "-aq", "--filter", "ancestor=" + image],
                              stdout=subprocess.PIPE, text=True).stdout.split()
        if not left:
            return
        time.sleep(0.02)
    sys.exit("trivial.sh: the containers of a run were not removed within 30 s")

times = {name: [] for name, _ in sides}
for i in range(runs + 1):
    # Each side takes each place in the order equally often (with two sides: alternating),
    # since a run pays for the removal its predecessor left to the engine.
    k = i % len(sides)
    order = sides[k:] + sides[:k]
    for name, fn in order:
        t = fn(i)
        if i > 0:  # round 0 is the warm-up
            times[name].append(t)
        settle()

med = {name: statistics.median(ts) for name, ts in times.items()}
base = med["docker run"]
print("trivial job (checkout + 2 run steps), median of %d interleaved runs:" % runs)
for name, _ in sides:
    ts = " ".join("%.3f" % t for t in times[name])
    print("  %-10s %.3f s  (runs: %s)" % (name, med[name], ts))
ratio = med["localci"] / base
ok = ratio <= target
print("ratio localci / docker run: %.2f (target <= %.2f) %s" % (ratio, target, "ok" if ok else "MISSED"))
if before:
    print("ratio before / docker run: %.2f" % (med["before"] / base))

# --- where localci's time goes: the traces of the timed runs ------------------------------
def key_of(what, detail):
    detail = re.sub(r"[0-9a-f]{8,}", "#", detail)       # ids and run names differ per run
    detail = re.sub(r"\(failed: .*\)", "(failed)", detail)
    return what, detail

spans = {}   # (what, detail, n-th of that key) -> [(start, duration)]
sums = {}    # what -> [total ms of that kind of span in each run]
walls = []
for i in range(1, runs + 1):
    seen = {}
    with open("%s/trace-%d.tsv" % (work, i)) as f:
        rows = [line.rstrip("\n").split("\t", 3) for line in f if line.strip()]
    rows.sort(key=lambda r: float(r[0]))
    for start, dur, what, detail in rows:
        k = key_of(what, detail)
        seen[k] = seen.get(k, 0) + 1
        spans.setdefault(k + (seen[k],), []).append((float(start), float(dur)))
        sums.setdefault(what, [0.0] * runs)[i - 1] += float(dur)
    walls.append(times["localci"][i - 1] * 1000)

PHASES = {"execute", "front-end", "connect", "session-open", "images", "jobs", "step",
          "close", "run", "report"}
print()
print("where localci's time goes (medians over the timed runs; ms from the start of `execute`):")
print("  %8s %8s  %s" % ("start", "took", "what"))
def median_of(values):
    return statistics.median(values) if values else 0.0
order = sorted(spans.items(), key=lambda kv: median_of([s for s, _ in kv[1]]))
for (what, detail, n), values in order:
    if len(values) < runs // 2 + 1:
        continue  # not in most runs (a retry, a poll): not typical
    indent = "  " if what in PHASES else "    "
    label = what if not detail else "%s %s" % (what, detail)
    if n > 1:
        label += " (#%d)" % n
    print("  %8.1f %8.1f  %s%s" % (median_of([s for s, _ in values]),
                                 median_of([d for _, d in values]), indent, label))
execute = median_of([d for _, d in spans.get(("execute", "", 1), [])])
print("  %8s %8.1f  outside `execute` (process start-up, exit): wall %.1f - execute %.1f"
      % ("", median_of(walls) - execute, median_of(walls), execute))
calls = ["create", "attach", "start", "exec", "upload", "download", "kill", "remove", "list", "inspect-image"]
print("  per kind of request (median of the per-run sums, ms): " +
      ", ".join("%s %.1f" % (w, median_of(sums[w])) for w in calls if w in sums))
sys.exit(1 if check and not ok else 0)
PY
