#!/bin/sh
# run-tests.sh TEST...: runs each test script, prints one line per test, and writes the
# results as JUnit XML (with each test's file and time, which `circleci tests split
# --split-by=timings` reads in later runs) to test-results/junit.xml. Exits 1 if one failed.
set -u
mkdir -p test-results
failed=0
cases=""
for t in "$@"; do
    start=$(date +%s)
    if out=$(sh "$t" 2>&1); then
        verdict=passed
        body=""
    else
        verdict=FAILED
        failed=$((failed + 1))
        body="<failure message=\"$(echo "$out" | tr -d '<>&"' | head -c 200)\"/>"
    fi
    took=$(($(date +%s) - start))
    echo "test $t: $verdict"
    cases="$cases<testcase file=\"$t\" classname=\"greeter\" name=\"$(basename "$t" .sh)\" time=\"$took\">$body</testcase>"
done
echo "<testsuite name=\"greeter\" tests=\"$#\" failures=\"$failed\">$cases</testsuite>" >test-results/junit.xml
[ "$failed" -eq 0 ]
