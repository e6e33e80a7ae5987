#!/usr/bin/env bash
# Bring the containerised lab up / down / report its status (idempotent).
#
# Three containers on a podman network of their own, systemd as PID 1 in each:
#   <prefix>-slurm    hostname mtlab-slurm    MariaDB -> slurmdbd -> slurmctld
#   <prefix>-compute  hostname mtlab-compute  slurmd (waits for slurmctld)
#   <prefix>-ood      hostname mtlab-ood      OOD layout, Ruby, Slurm client
# The CNI network here has no DNS plugin, so fixed addresses + /etc/hosts entries name them.
# /home is a named volume shared by all three, as NFS homes are on a real cluster (the slurm
# container doubles as the login node).
#
# The containers run the images of the generation OOD_MT_LAB_GENERATION (default bookworm;
# lab/generation.sh), localhost/ood-mt-lab-<node>:<generation>, built by lab/build_images.sh.
#
# usage: [OOD_MT_LAB_GENERATION=trixie] lab/lab_ctl.sh up|down|status|wait|logs [--prefix P] [--subnet 10.89.77] [--seed DIR]
#        [OOD_MT_LAB_GENERATION=trixie] lab/lab_ctl.sh up|down|status|wait|logs --molecule
# --molecule names the generation's Molecule lab (molecule/shared/create.yml): prefix
# ood-mt-mol-<generation> (molecule/*/molecule.yml name its containers so), subnet
# 10.89.<78 + the generation's place among lab/generations/*.env in name order>, seed in
# .lab/molecule-<generation>/seed, so each generation's Molecule lab can run beside the others.
set -euo pipefail
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/generation.sh
source "$lab_dir/generation.sh"
repo_root="$(cd "$lab_dir/.." && pwd)"

cmd="${1:-status}"
shift || true
prefix=ood-mt-lab
subnet=10.89.77
seed_dir="$repo_root/.lab/seed"
while (($#)); do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --subnet) subnet="$2"; shift 2 ;;
    --seed) seed_dir="$2"; shift 2 ;;
    --molecule)
      prefix="ood-mt-mol-$lab_generation"
      mapfile -t known < <(find "$lab_dir/generations" -name '*.env' -printf '%f\n' | sed 's/\.env$//' | LC_ALL=C sort)
      for i in "${!known[@]}"; do
        [[ "${known[$i]}" != "$lab_generation" ]] || subnet="10.89.$((78 + i))"
      done
      seed_dir="$repo_root/.lab/molecule-$lab_generation/seed"
      shift
      ;;
    *) echo "lab_ctl: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
network="$prefix"
home_volume="$prefix-home"
generation_label=org.ood-mt.lab.generation
nodes=(slurm compute ood)

ip_of() { case "$1" in slurm) echo "$subnet.10" ;; compute) echo "$subnet.11" ;; ood) echo "$subnet.12" ;; esac; }

host_args() {
  local n
  for n in "${nodes[@]}"; do
    printf -- '--add-host=mtlab-%s:%s\n' "$n" "$(ip_of "$n")"
  done
}

require_containers_conf() {
  # scripts/bootstrap.sh writes it (runc, ulimits); without it every podman run fails here.
  if [[ ! -f /etc/containers/containers.conf ]]; then
    echo "lab_ctl: /etc/containers/containers.conf is missing; run 'bash scripts/bootstrap.sh' first" >&2
    exit 1
  fi
}

up() {
  require_containers_conf
  "$lab_dir/seed.sh" "$seed_dir"
  # The homes belong to the generation that made them (a database's data directory is for
  # that generation's PostgreSQL): a lab made by another generation is recreated, homes and all.
  # A home volume without the label predates generations, all of which were bookworm.
  local made_by
  if podman volume exists "$home_volume"; then
    made_by="$(podman volume inspect --format "{{index .Labels \"$generation_label\"}}" "$home_volume")"
    if [[ "${made_by:-$lab_default_generation}" != "$lab_generation" ]]; then
      echo "lab_ctl: $prefix was made for lab generation ${made_by:-$lab_default_generation}; recreating it for $lab_generation (its homes start empty)" >&2
      down
    fi
  fi
  podman volume exists "$home_volume" ||
    podman volume create --label "$generation_label=$lab_generation" "$home_volume" >/dev/null
  podman network exists "$network" || podman network create --subnet "$subnet.0/24" "$network" >/dev/null
  local n name state reason
  local -a args
  for n in "${nodes[@]}"; do
    name="$prefix-$n"
    state="$(podman container inspect --format '{{.State.Status}}' "$name" 2>/dev/null || true)"
    reason=""
    if [[ -n "$state" && "$(podman container inspect --format '{{.Image}}' "$name")" != \
      "$(podman image inspect --format '{{.Id}}' "localhost/ood-mt-lab-$n:$lab_generation")" ]]; then
      reason="runs an outdated image" # the image was rebuilt since this container was made
    elif [[ "$state" == running ]] && ! podman exec "$name" true >/dev/null 2>&1; then
      # podman still records it as running, but its processes were killed outside podman
      # (a session or CI job ending kills every process, conmon included).
      reason="is recorded as running but its processes are gone"
    fi
    if [[ -n "$reason" ]]; then
      echo "lab_ctl: $name $reason; recreating it" >&2
      podman rm --force --time 10 "$name" >/dev/null
      state=""
    fi
    if [[ "$state" == running ]]; then
      continue
    elif [[ -n "$state" ]]; then
      podman start "$name" >/dev/null
      continue
    fi
    args=(--detach --name "$name" --hostname "mtlab-$n" --systemd=always
      --network "$network" --ip "$(ip_of "$n")"
      --volume "$seed_dir/common:/lab-seed/common:ro")
    mapfile -t -O "${#args[@]}" args < <(host_args)
    case "$n" in
      slurm) args+=(--volume "$seed_dir/slurm:/lab-seed/slurm:ro") ;;
      # slurmd runs a job's --get-user-env (which OOD's --export=NONE implies) in a new mount
      # namespace in Slurm 24.11 (not 22.05): clone(CLONE_NEWNS) needs CAP_SYS_ADMIN, which a real node's
      # root has and a podman container lacks ("fatal: clone: Operation not permitted").
      compute) args+=(--cap-add SYS_ADMIN) ;;
    esac
    args+=(--volume "$home_volume:/home")
    podman run "${args[@]}" "localhost/ood-mt-lab-$n:$lab_generation" >/dev/null
  done
  wait_ready
}

wait_ready() { # health: every node idle in sinfo, seen from the OOD container
  local deadline=$((SECONDS + ${LAB_READY_TIMEOUT:-300})) out="" n state
  while ((SECONDS < deadline)); do
    # A container that stopped will not come back by itself: say so now, not at the deadline.
    for n in "${nodes[@]}"; do
      state="$(podman container inspect --format '{{.State.Status}} (exit code {{.State.ExitCode}})' "$prefix-$n" 2>&1 || true)"
      if [[ "$state" != running* ]]; then
        echo "lab_ctl: $prefix-$n is not running: $state" >&2
        logs >&2
        return 1
      fi
    done
    out="$(podman exec "$prefix-ood" sinfo --noheader -o '%N %t' 2>/dev/null || true)"
    if [[ "$out" =~ ^mtlab-compute\ (idle|mix|alloc) ]]; then
      return 0
    fi
    sleep 2
  done
  echo "lab_ctl: lab not ready after ${LAB_READY_TIMEOUT:-300}s (sinfo: '${out:-no answer}')" >&2
  logs >&2
  return 1
}

logs() { # what explains a failure: container state, console, unit states, Slurm logs, journal tails
  local n name state
  for n in "${nodes[@]}"; do
    name="$prefix-$n"
    podman container exists "$name" || continue
    state="$(podman container inspect --format '{{.State.Status}}' "$name" 2>/dev/null || true)"
    echo "===== $name: container"
    podman container inspect --format \
      'state {{.State.Status}}, exit code {{.State.ExitCode}}, OOM-killed {{.State.OOMKilled}}, started {{.State.StartedAt}}, finished {{.State.FinishedAt}}, error "{{.State.Error}}"' \
      "$name" 2>&1 || true
    # What podman saw happen to it (create, start, died, kill, stop, with times), and systemd's
    # console: the only records left when the container has stopped.
    echo "===== $name: podman events"
    podman events --stream=false --since 2h --filter "container=$name" \
      --format '{{.Time}} {{.Status}}' 2>&1 | grep -v ' exec' | tail -n 12 || true
    echo "===== $name: console (tail)"
    podman logs --tail 40 "$name" 2>&1 || true
    [[ "$state" == running ]] || continue
    echo "===== $name: failed units"
    podman exec "$name" systemctl --failed --no-legend --no-pager 2>&1 || true
    for f in slurmctld slurmdbd slurmd; do
      if podman exec "$name" test -f "/var/log/slurm/$f.log" 2>/dev/null; then
        echo "===== $name: /var/log/slurm/$f.log (tail)"
        podman exec "$name" tail -n 40 "/var/log/slurm/$f.log" 2>&1 || true
      fi
    done
    echo "===== $name: journal (tail)"
    podman exec "$name" journalctl --no-pager -n 60 2>&1 || true
  done
}

down() {
  local n
  for n in "${nodes[@]}"; do
    podman rm --force --time 10 "$prefix-$n" >/dev/null 2>&1 || true
  done
  podman volume rm --force "$home_volume" >/dev/null 2>&1 || true
  podman network rm --force "$network" >/dev/null 2>&1 || true
}

status() {
  local n name state rc=0
  for n in "${nodes[@]}"; do
    name="$prefix-$n"
    state="$(podman container inspect --format '{{.State.Status}}' "$name" 2>/dev/null || echo absent)"
    printf '%-22s %s\n' "$name" "$state"
    [[ "$state" == running ]] || rc=1
  done
  if ((rc == 0)); then
    podman exec "$prefix-ood" sinfo --noheader -o 'partition %P node %N state %t' 2>&1 || rc=1
  fi
  return "$rc"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status) status ;;
  wait) wait_ready ;;
  logs) logs ;;
  *) echo "usage: lab/lab_ctl.sh up|down|status|wait|logs [--prefix P] [--subnet S] [--seed DIR] | --molecule" >&2; exit 2 ;;
esac
