#!/usr/bin/env bash
# Run the whole test suite: install what it needs, lint, unit tests, integration tests on a
# real Slurm started here, and the Molecule scenarios on the podman lab.
#
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh unit lint  # only some parts (lint, unit, slurm, molecule)
#
# OOD_MT_LAB_GENERATIONS (default: "bookworm trixie") lists the lab generations
# (lab/generations/*.env) the molecule part runs on, each with OOD_MT_LAB_GENERATION set, on a
# Molecule lab of its own (`lab/lab_ctl.sh --molecule`), and each its own part
# (molecule-<generation>). Every generation runs the scenarios that depend on its Slurm, Ruby,
# Python and database servers (generation_scenarios below); the others run once, dealt out
# over the generations so their labs finish at about the same time (once_scenarios below;
# docs/testing.md "Generations" says which are which, and why). One generation runs all six.
# When the molecule part is asked for, the lab images of every listed generation are built in
# the background from the start (they take minutes and no earlier part uses them); each
# generation's molecule part waits for its own images (that wait counts in its time).
#
# The molecule-<generation> parts run in the background, side by side and beside the parts
# after them (slurm, by default): much of their time is spent waiting on containers, daemons
# and jobs, not on the 2 cores. Their output goes to .lab/logs/part-<part>.log and is printed
# when they end. OOD_MT_TEST_SERIAL=1 runs every part in the foreground, one after the other.
#
# Each part is timed; the last lines are the wall clock and the test totals.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
venv="${OOD_MT_VENV:-$repo_root/.venv}"
reports="$repo_root/.lab/test-reports"
parts=("$@")
if ((${#parts[@]} == 0)); then
  parts=(lint unit molecule slurm)
fi

bash scripts/bootstrap.sh
# shellcheck source=/dev/null
source "$venv/bin/activate"
# Open OnDemand's own sources, which the tests run (docs/testing.md); empty = those tests skip.
OOD_MT_OOD_SOURCE="$(bash scripts/ood_sources.sh)"
export OOD_MT_OOD_SOURCE
echo "test: OOD sources: ${OOD_MT_OOD_SOURCE:-none, so the tests that run OOD code skip}"
rm -rf "$reports"
mkdir -p "$reports"

declare -A seconds=()
declare -A status=()
failed=0
read -r -a generations <<<"${OOD_MT_LAB_GENERATIONS:-bookworm trixie}"
# Molecule scenarios every generation runs, and those that run once, on the generation at
# their place in once_scenarios modulo the number of generations (bookworm: rotation,
# uninstall; trixie: check, when both run).
generation_scenarios=(default onboarding slurm_privatedata)
once_scenarios=(rotation check uninstall)

# Each generation's images, built one generation after the other in the background; when a
# generation's are done, $reports/images-<generation>.rc holds lab/build_images.sh's exit code.
if [[ " ${parts[*]} " == *" molecule "* ]]; then
  mkdir -p .lab/logs
  (
    for generation in "${generations[@]}"; do
      rc=0
      OOD_MT_LAB_GENERATION="$generation" lab/build_images.sh >".lab/logs/images-$generation.log" 2>&1 || rc=$?
      echo "$rc" >"$reports/images-$generation.rc"
    done
  ) &
  echo "test: building the lab images of ${generations[*]} in the background (.lab/logs/images-*.log)"
fi

run_part() {
  local part="$1"
  shift
  local started=$SECONDS rc=0
  echo
  echo "==> [$part] $*"
  "$@" || rc=$?
  # pytest exits 5 when a selection holds no test; a part with nothing to run is not a failure
  if ((rc == 5)); then rc=0; fi
  seconds[$part]=$((SECONDS - started))
  if ((rc == 0)); then status[$part]=ok; else status[$part]="FAILED (exit $rc)"; failed=1; fi
}

pytest_part() {
  local part="$1"
  shift
  run_part "$part" python -m pytest -q -o junit_family=xunit2 --junitxml="$reports/$part.xml" "$@"
}

# wait_for_images GENERATION: until that generation's images are built; fails when they were not.
# shellcheck disable=SC2317  # called by molecule_part, which run_part_background runs
wait_for_images() {
  until [[ -s "$reports/images-$1.rc" ]]; do sleep 5; done
  [[ "$(cat "$reports/images-$1.rc")" == 0 ]] || {
    echo "test: lab/build_images.sh ($1) failed: .lab/logs/images-$1.log" >&2
    return 1
  }
}

# molecule_part GENERATION: the molecule part of one lab generation (its images first).
# shellcheck disable=SC2317  # run_part_background runs it
molecule_part() {
  local index=0 i scenario
  local -a mine=("${generation_scenarios[@]}")
  for i in "${!generations[@]}"; do [[ "${generations[$i]}" != "$1" ]] || index=$i; done
  for i in "${!once_scenarios[@]}"; do
    ((i % ${#generations[@]} != index)) || mine+=("${once_scenarios[$i]}")
  done
  # Molecule runs them by name whatever the order given (check first, on a fresh lab; default
  # before those that need the site deployed); sorted here too, for the log's name.
  scenario="$(printf '%s\n' "${mine[@]}" | LC_ALL=C sort | paste -sd' ' -)"
  wait_for_images "$1" &&
    OOD_MT_LAB_GENERATION="$1" OOD_MT_MOLECULE_SCENARIO="$scenario" \
      python -m pytest -q -o junit_family=xunit2 --junitxml="$reports/molecule-$1.xml" -m "molecule" tests
}

# Background parts: each writes "<seconds> <exit code>" to $reports/<part>.result when it ends.
background_parts=()
run_part_background() {
  local part="$1"
  shift
  if [[ "${OOD_MT_TEST_SERIAL:-0}" == 1 ]]; then
    run_part "$part" "$@"
    return
  fi
  echo
  echo "==> [$part] started in the background (output: .lab/logs/part-$part.log)"
  (
    started=$SECONDS rc=0
    "$@" >".lab/logs/part-$part.log" 2>&1 || rc=$?
    echo "$((SECONDS - started)) $rc" >"$reports/$part.result"
  ) &
  background_parts+=("$part")
}

wait_background_parts() {
  local part elapsed rc
  wait
  for part in "${background_parts[@]}"; do
    echo
    echo "==> [$part] (ran in the background)"
    cat ".lab/logs/part-$part.log"
    read -r elapsed rc <"$reports/$part.result" || { elapsed=0; rc=1; }
    if ((rc == 5)); then rc=0; fi
    seconds[$part]=$elapsed
    if ((rc == 0)); then status[$part]=ok; else status[$part]="FAILED (exit $rc)"; failed=1; fi
  done
}

for part in "${parts[@]}"; do
  case "$part" in
    lint)
      pytest_part lint -m "lint" tests
      ;;
    unit)
      # Two pytest workers (pytest-xdist), one test file each at a time (--dist loadfile: a file's
      # module fixtures are built once, in one worker); every test makes its own temporary dirs.
      # OOD_MT_TEST_WORKERS=0 runs them in this process. Tests marked serial measure latency and
      # run afterwards, alone. The slurm and molecule parts stay serial: they share one Slurm and
      # one podman lab.
      pytest_part unit -n "${OOD_MT_TEST_WORKERS:-2}" --dist loadfile \
        -m "not slurm and not molecule and not lint and not serial" tests
      pytest_part unit-serial -m "serial and not slurm and not molecule and not lint" tests
      ;;
    slurm)
      if [[ $(id -u) -ne 0 ]]; then
        echo "slurm part needs root (it starts slurmctld, slurmd, slurmdbd, MariaDB and munge)" >&2
        status[slurm]="FAILED (not root)"
        failed=1
        continue
      fi
      run_part slurm-start bash -c 'tests/lab/host_slurm.sh start && tests/lab/host_slurm.sh cancel-jobs'
      pytest_part slurm -m "slurm" tests
      ;;
    molecule)
      for generation in "${generations[@]}"; do
        run_part_background "molecule-$generation" molecule_part "$generation"
      done
      ;;
    *)
      echo "unknown part '$part' (use lint, unit, slurm, molecule)" >&2
      exit 2
      ;;
  esac
done

wait_background_parts

echo
echo "Time per part (wall clock of the whole run: $SECONDS s):"
for part in "${!seconds[@]}"; do
  printf '  %-12s %5d s  %s\n' "$part" "${seconds[$part]}" "${status[$part]}"
done | sort
python - "$reports" <<'PY'
import sys, xml.etree.ElementTree as ET
from pathlib import Path
total = {"passed": 0, "failed": 0, "skipped": 0}
for report in sorted(Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests = int(suite.get("tests", 0)); failures = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        total["passed"] += tests - failures - skipped; total["failed"] += failures; total["skipped"] += skipped
print(f"total: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
PY
exit "$failed"
