#!/usr/bin/env bash
# Generate the lab's secrets and Slurm configs into SEED_DIR (idempotent: existing secrets
# are kept, so a running lab keeps working). Layout, mounted into the containers at /lab-seed:
#   SEED_DIR/common/munge.key  slurm.conf        (every container)
#   SEED_DIR/slurm/slurmdbd.conf slurmdbd.pass   (the Slurm head container only)
# Everything is created with umask 077; secrets never pass through argv.
# The templates' @LAB_*@ placeholders take the values of the lab generation
# (OOD_MT_LAB_GENERATION, lab/generations/<generation>.env; lab/generation.sh).
# usage: lab/seed.sh SEED_DIR [CLUSTER_NAME]
set -euo pipefail
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/generation.sh
source "$lab_dir/generation.sh"
seed_dir="${1:?usage: lab/seed.sh SEED_DIR [CLUSTER_NAME]}"
cluster="${2:-lab}"
umask 077
mkdir -p "$seed_dir/common" "$seed_dir/slurm"
chmod 0700 "$seed_dir" "$seed_dir/common" "$seed_dir/slurm"

write_atomic() { # dest, content on stdin
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  mv -f "$tmp" "$1"
}

if [[ ! -s "$seed_dir/common/munge.key" ]]; then
  openssl rand 1024 | write_atomic "$seed_dir/common/munge.key"
fi
if [[ ! -s "$seed_dir/slurm/slurmdbd.pass" ]]; then
  openssl rand -hex 24 | write_atomic "$seed_dir/slurm/slurmdbd.pass"
fi
pass="$(cat "$seed_dir/slurm/slurmdbd.pass")"

render() { # template -> stdout: @LAB_*@ from the generation file; an unknown placeholder is an error
  local text key
  text="$(cat "$lab_dir/templates/$1")"
  while IFS= read -r key; do
    text="${text//@$key@/${!key}}"
  done < <(sed -n 's/^\(LAB_[A-Z0-9_]*\)=.*/\1/p' "$lab_generation_file")
  if [[ "$text" =~ @(LAB_[A-Z0-9_]+)@ ]]; then
    echo "seed: lab/templates/$1 uses @${BASH_REMATCH[1]}@, which $lab_generation_file does not set" >&2
    return 1
  fi
  printf '%s\n' "$text"
}

slurm_conf="$(render slurm.conf)"
printf '%s\n' "${slurm_conf//@CLUSTER@/$cluster}" | write_atomic "$seed_dir/common/slurm.conf"
dbd_conf="$(render slurmdbd.conf)"
printf '%s\n' "${dbd_conf//@DB_PASS@/$pass}" | write_atomic "$seed_dir/slurm/slurmdbd.conf"
