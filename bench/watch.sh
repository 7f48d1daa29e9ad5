#!/usr/bin/env bash
# Benchmark of `localci execute build --watch` (issue 10) on a generated repository of
# 10,000 files, with the local image localci-test/busybox:latest, side by side in one run
# with its baseline: the same job run again without --watch (`localci execute build`, a
# new run with new containers and a full checkout), which is what a user does without it.
#
#   first      the first run of the watch (containers start, full checkout)
#   unchanged  a rerun after a file was touched but not changed: the checkout sends no
#              file data (target: 0 files, 0 bytes)
#   one-file   a rerun after one file changed: the checkout sends that file alone
#              (target: 1 file)
#
# Each rerun's time is the `duration_ms` of its `watch_result` event (--json): from the
# change the watcher reported to the end of the job's steps. The baseline is the wall time
# of `localci execute build`. Rounds alternate the two (a warm-up round, then RUNS timed
# rounds; medians). Output, one line per figure:
#   <name>: watch X ms (sent F files, B bytes), baseline Y ms, ratio Z  ok|MISSED
#
# Usage: bench/watch.sh [--check]
#   --check   exit 1 when a target is missed (default: report only)
# Environment:
#   LOCALCI   the localci binary (default: a release build, built if missing)
#   RUNS      timed rounds (default 5)
#   FILES     files in the generated repository (default 10000)
set -euo pipefail

IMAGE=localci-test/busybox:latest
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-5}
FILES=${FILES:-10000}
CHECK=0
SCRIPT_NAME=${0##*/}
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() { printf '%s: ERROR: %s\n' "$SCRIPT_NAME" "$*" >&2; exit 2; }

for arg in "$@"; do
    case $arg in
        --check) CHECK=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

command -v docker >/dev/null || die "docker is required"
command -v git >/dev/null || die "git is required"
command -v python3 >/dev/null || die "python3 is required"
docker image inspect "$IMAGE" >/dev/null 2>&1 ||
    die "image $IMAGE is missing; build it with: bash tests/images/build.sh busybox"

if [ -z "${LOCALCI:-}" ]; then
    LOCALCI=${CARGO_TARGET_DIR:-$ROOT/target}/release/localci
    log "building $LOCALCI (cargo build --release)"
    (cd "$ROOT" && cargo build --release --quiet --bin localci) || die "cargo build failed"
fi
[ -x "$LOCALCI" ] || die "LOCALCI=$LOCALCI is not an executable"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/localci-bench-watch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "work dir $WORK, $FILES files, $RUNS rounds, $($LOCALCI --version)"

export LOCALCI RUNS FILES CHECK IMAGE WORK
exec python3 - <<'PY'
import json, os, signal, statistics, subprocess, sys, threading, time, queue

localci, runs, files = os.environ["LOCALCI"], int(os.environ["RUNS"]), int(os.environ["FILES"])
check, image, work = os.environ["CHECK"] == "1", os.environ["IMAGE"], os.environ["WORK"]
repo = os.path.join(work, "repo")
cache = os.path.join(work, "cache")
os.makedirs(os.path.join(repo, ".circleci"))
with open(os.path.join(repo, ".circleci/config.yml"), "w") as f:
    f.write(f"""version: 2
jobs:
  build:
    docker:
      - image: {image}
    steps:
      - checkout
      - run: test -f src/d0/f0.txt && echo files are there
      - run: wc -c < one.txt
""")
for i in range(files - 1):
    d = os.path.join(repo, "src", f"d{i // 100}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i}\n" * 10)
with open(os.path.join(repo, "one.txt"), "w") as f:
    f.write("0\n")
git = ["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localci.invalid", "-c", "gc.auto=0",
       "-c", "commit.gpgsign=false"]
subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
subprocess.run(git + ["add", "-A"], check=True)
subprocess.run(git + ["commit", "-q", "-m", "bench"], check=True)
env = dict(os.environ, NO_COLOR="1")

def baseline():
    start = time.monotonic()
    subprocess.run([localci, "execute", "build", "--cache-dir", cache], cwd=repo, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.monotonic() - start) * 1000

watch = subprocess.Popen([localci, "execute", "build", "--watch", "--json", "--cache-dir", cache],
                         cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
results = queue.Queue()
def read():
    for line in watch.stdout:
        event = json.loads(line)
        if event["type"] == "watch_result":
            results.put(event)
threading.Thread(target=read, daemon=True).start()

def next_result():
    event = results.get(timeout=300)
    if not event["passed"]:
        sys.exit(f"watch run {event['run']} failed: {event['failure']}")
    return event

def settle():
    # The watcher's debounce and the unchanged tree: let every event be seen.
    time.sleep(0.5)

first = next_result()
one = os.path.join(repo, "one.txt")
rows = {"unchanged": [], "one-file": [], "baseline": []}
for round in range(runs + 1):
    settle()
    os.utime(one, None)
    unchanged = next_result()
    settle()
    with open(one, "w") as f:
        f.write(f"{round + 1}\n" * (round + 2))
    changed = next_result()
    base = baseline()
    if round == 0:
        continue  # warm-up
    rows["unchanged"].append(unchanged)
    rows["one-file"].append(changed)
    rows["baseline"].append(base)

watch.send_signal(signal.SIGINT)
code = watch.wait(timeout=60)

def sent(e):
    s = e["synced"]
    return f"sent {s['files']} files, {s['bytes']} bytes, {s['removed']} removed, {s['unchanged']} unchanged"

base = statistics.median(rows["baseline"])
missed = False
print(f"first: watch {first['duration_ms']} ms ({sent(first)}), baseline {base:.0f} ms")
for name, target in (("unchanged", 0), ("one-file", 1)):
    events = rows[name]
    ms = statistics.median(e["duration_ms"] for e in events)
    files_sent = max(e["synced"]["files"] for e in events)
    bytes_sent = max(e["synced"]["bytes"] for e in events)
    ok = files_sent == target and (target > 0 or bytes_sent == 0)
    missed |= not ok
    print(f"{name}: watch {ms:.0f} ms ({sent(events[-1])}), baseline {base:.0f} ms, "
          f"ratio {ms / base:.2f} (target: {target} file(s) sent) {'ok' if ok else 'MISSED'}")
print(f"ctrl-c: exit code {code}")
sys.exit(1 if check and (missed or code != 0) else 0)
PY
