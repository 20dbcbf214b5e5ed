# shellcheck shell=sh
# A backup job's healthcheck: `sh -c THIS fresh MARKER MAX_AGE_SECONDS`. Healthy while the job's
# last success (epoch seconds in MARKER) is younger than MAX_AGE_SECONDS.
marker="$1" max_age="$2"
test -s "$marker" && [ $(( $(date +%s) - $(cat "$marker") )) -lt "$max_age" ]
