#!/usr/bin/env bash
# The README's main command: build the kit, bring up the containerised Slurm + OOD lab,
# deploy the kit with Ansible and run a demo share.
#
#   bash scripts/lab.sh [up]   bootstrap, build, images, wheelhouse, lab, site.yml, demo share, report
#   bash scripts/lab.sh status containers, Slurm, and the card mtrecv sees
#   bash scripts/lab.sh down   remove the lab's containers, home volume and network
#
# Idempotent: a second `up` reuses the images (input-hash labels), the running containers
# and a running demo share. Every stage logs to .lab/logs/<stage>.log.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OOD_MT_VENV:-$repo_root/.venv}"
logs="$repo_root/.lab/logs"
# The lab's site file (inventories/lab) with the database engines of the lab generation
# (OOD_MT_LAB_GENERATION, lab/generations/*.env), written by lab/generation_site.py.
site_dir="$repo_root/.lab/site-${OOD_MT_LAB_GENERATION:-bookworm}"
site_file="$site_dir/group_vars/all/multitenant.yml"
build_dir="$repo_root/build/lab"
export PATH="$venv/bin:$PATH"
export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$repo_root/ansible.cfg}"
mkdir -p "$logs"

total=8
stage_no=0
run_stage() { # name, description, command...
  local name="$1" what="$2" start rc
  shift 2
  stage_no=$((stage_no + 1))
  start=$SECONDS
  printf '[%d/%d] %s … ' "$stage_no" "$total" "$what"
  if "$@" >"$logs/$name.log" 2>&1; then
    printf 'ok (%d s)\n' "$((SECONDS - start))"
  else
    rc=$?
    printf 'FAILED (%d s)\n' "$((SECONDS - start))"
    echo "lab: stage '$what' failed (exit $rc); log: $logs/$name.log" >&2
    tail -n 25 "$logs/$name.log" >&2
    exit "$rc"
  fi
}

stage_site() {
  if [[ ! -f "$repo_root/playbooks/site.yml" ]]; then
    echo "playbooks/site.yml is missing: the Ansible playbooks have not landed in this checkout" >&2
    return 1
  fi
  ansible-playbook -i "$repo_root/inventories/lab/hosts.yml" "$repo_root/playbooks/site.yml" \
    -e "ood_mt_site_file=$site_file"
}

stage_build() {
  python3 "$repo_root/lab/generation_site.py" --out "$site_dir"
  ood-mt build --site "$site_file" --out "$build_dir"
}

report() {
  echo
  echo "== apps installed (on ood-mt-lab-ood)"
  python3 - "$build_dir/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for a in m["apps"]:
    print(f"  {a['name']:<22} {a['role']:<9} {a['dest']}  (root:{a['group']} {a['dir_mode']})")
i = m["initializer"]
print(f"  initializer            {i['dest']}")
PY
  echo "== users onboarded (Slurm wckey 'multitenant')"
  podman exec ood-mt-lab-slurm sacctmgr --noheader --parsable2 list wckey multitenant format=user |
    sed 's/^/  /'
  echo "== demo share"
  python3 "$repo_root/lab/demo_share.py" --report-only | sed 's/^/  /'
  echo "== mtrecv's terminal on the login node (ood-mt-lab-slurm): ood-mt list"
  podman exec ood-mt-lab-slurm runuser -l mtrecv -c 'ood-mt list' 2>&1 | sed 's/^/  /' || true
}

up() {
  run_stage bootstrap "bootstrap (Debian + Python packages)" bash "$repo_root/scripts/bootstrap.sh"
  run_stage build "ood-mt build → build/lab" stage_build
  run_stage images "building images (cached by input hash)" "$repo_root/lab/build_images.sh"
  run_stage wheelhouse "wheelhouse for the nodes' ood-mt → build/wheelhouse" bash "$repo_root/lab/wheelhouse.sh"
  run_stage lab "lab up (MariaDB → slurmdbd → slurmctld → slurmd)" "$repo_root/lab/lab_ctl.sh" up
  run_stage site "ansible-playbook playbooks/site.yml -i inventories/lab" stage_site
  run_stage demo "demo share: mtpub publishes mt_database to mtclass" python3 "$repo_root/lab/demo_share.py"
  run_stage report "collecting the report" true
  report
}

# The demo launches and reads its share with Open OnDemand's own code (docs/testing.md).
OOD_MT_OOD_SOURCE="$(bash "$repo_root/scripts/ood_sources.sh")"
export OOD_MT_OOD_SOURCE

case "${1:-up}" in
  up) up ;;
  down) "$repo_root/lab/lab_ctl.sh" down && echo "lab: removed" ;;
  status)
    "$repo_root/lab/lab_ctl.sh" status
    python3 "$repo_root/lab/demo_share.py" --report-only || true
    ;;
  *) echo "usage: bash scripts/lab.sh [up|down|status]" >&2; exit 2 ;;
esac
