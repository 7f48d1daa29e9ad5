#!/bin/sh
# Checked out with the rest of the repository and run by the `build` job.
set -eu
printf 'hello from %s, running as %s in %s\n' "$0" "$(id -un)" "$(pwd)"
