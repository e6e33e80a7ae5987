#!/bin/sh
# TEST DOUBLE of squeue that hangs: the thing under test is the initializer's timeout.
# It starts a child (like a real squeue stuck on slurmctld) so the test can check the
# whole process group is killed; the child's pid goes to $HANGING_SQUEUE_DOUBLE_PIDFILE.
sleep 30 &
if [ -n "${HANGING_SQUEUE_DOUBLE_PIDFILE:-}" ]; then
  echo "$!" >"$HANGING_SQUEUE_DOUBLE_PIDFILE"
fi
wait
