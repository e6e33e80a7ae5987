# shellcheck shell=bash
# The lab generation (Debian release + its Slurm, Ruby, PostgreSQL, MariaDB), chosen by ONE
# setting, OOD_MT_LAB_GENERATION (default bookworm). Sourced by lab/build_images.sh and
# lab/lab_ctl.sh. Everything that differs between generations is in
# lab/generations/<generation>.env; nothing else tests the generation's name.
#
# Sets: lab_generation, lab_generation_file, lab_build_args (--build-arg KEY=VALUE ...), and
# the file's keys as shell variables (LAB_SUITE, LAB_PG_MAJOR, ...).
# Images are tagged localhost/ood-mt-lab-<node>:<generation>; the default generation's are
# also tagged :latest.
lab_default_generation=bookworm
lab_generation="${OOD_MT_LAB_GENERATION:-$lab_default_generation}"
lab_generation_file="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/generations/$lab_generation.env"
if [[ ! "$lab_generation" =~ ^[a-z0-9]+$ || ! -f "$lab_generation_file" ]]; then
  echo "lab: OOD_MT_LAB_GENERATION='$lab_generation' has no lab/generations/$lab_generation.env" \
    "(known: $(find "$(dirname "$lab_generation_file")" -name '*.env' -printf '%f\n' | sed 's/\.env$//' | sort | paste -sd' ' -))" >&2
  exit 2
fi
lab_build_args=(--build-arg "LAB_GENERATION=$lab_generation")
while IFS= read -r lab_line || [[ -n "$lab_line" ]]; do
  case "$lab_line" in
    '' | \#*) continue ;;
  esac
  if [[ ! "$lab_line" =~ ^(LAB_[A-Z0-9_]+)=([^\"\'\$\`[:space:]]*)$ ]]; then
    echo "lab: $lab_generation_file: line '$lab_line' is not KEY=VALUE (KEY starting LAB_, no quotes or spaces)" >&2
    exit 2
  fi
  printf -v "${BASH_REMATCH[1]}" '%s' "${BASH_REMATCH[2]}"
  lab_build_args+=(--build-arg "$lab_line")
done <"$lab_generation_file"
unset lab_line
