#!/bin/sh
# build.sh FLAVOR: writes the greeter program of FLAVOR (plain or loud) to stdout.
set -eu
echo '#!/bin/sh'
case "$1" in
    loud) echo 'echo "HELLO, $(echo "${1:-world}" | tr a-z A-Z)!"' ;;
    *) echo 'echo "hello, ${1:-world}"' ;;
esac
