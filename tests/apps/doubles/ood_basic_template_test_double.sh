# shellcheck shell=bash
# TEST DOUBLE of the helpers OOD's `basic` batch_connect template defines in the job
# script (find_port, wait_until_port, create_passwd, random_number) and of `host`.
# The thing under test is the kit's rendered before.sh, not OOD: these stand-ins only let
# before.sh run outside a job. Deterministic on purpose (fixed port and password).
host="${MT_TEST_HOST:-node-test-double}"
export host
find_port() { printf '%s\n' "${MT_TEST_PORT:-4711}"; }
random_number() { printf '%s\n' "$1"; }
wait_until_port() { return 0; }
create_passwd() { printf '%s' "test-double-password-not-secret"; }
