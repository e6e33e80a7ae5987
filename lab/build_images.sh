#!/usr/bin/env bash
# Build the lab's podman images, each cached by a hash of its inputs.
#
#   ood-mt-lab-rootfs   debootstrap --variant=minbase bookworm, imported (no registry, no pulls)
#   ood-mt-lab-base     systemd, munge, Slurm client, Python, lab users (containerfiles/base)
#   ood-mt-lab-slurm    MariaDB, slurmdbd, slurmctld
#   ood-mt-lab-compute  slurmd, PostgreSQL 15, MariaDB, Python, openssl, gzip
#   ood-mt-lab-ood      OOD layout, Ruby + ActiveSupport, Slurm client, psql
#
# An image is rebuilt only when the hash of its Containerfile, the files it copies and its
# parent's hash differ from the hash stored in its label org.ood-mt.lab.input-hash.
# usage: lab/build_images.sh [--force]
set -euo pipefail

lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
label=org.ood-mt.lab.input-hash
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { printf 'build_images: %s\n' "$*"; }

debian_mirror() {
  local mirror=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    mirror="$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources | head -n1 | cut -d' ' -f1)"
  fi
  if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
    mirror="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)"
  fi
  printf '%s\n' "${mirror:-http://deb.debian.org/debian}"
}

image_hash() { # image -> stored input hash, empty when absent
  podman image inspect --format "{{index .Labels \"$label\"}}" "localhost/$1:latest" 2>/dev/null || true
}

hash_inputs() { # parent-hash paths... -> sha256 over the parent hash and every file's path+content
  local parent="$1"
  shift
  {
    printf 'parent %s\n' "$parent"
    (cd "$lab_dir" && find "$@" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

ensure_rootfs() {
  local mirror want have tmp
  mirror="$(debian_mirror)"
  want="$(printf 'debootstrap minbase bookworm %s rootfs-v1\n' "$mirror" | sha256sum | cut -d' ' -f1)"
  have="$(image_hash ood-mt-lab-rootfs)"
  if ((force == 0)) && [[ "$have" == "$want" ]]; then
    log "ood-mt-lab-rootfs up to date"
    printf '%s\n' "$want" >"$hash_out"
    return
  fi
  log "ood-mt-lab-rootfs: debootstrap from $mirror"
  tmp="$(mktemp -d /var/tmp/ood-mt-lab-rootfs.XXXXXX)"
  # shellcheck disable=SC2064  # expand now: the trap must remove this directory
  trap "rm -rf '$tmp'" RETURN
  debootstrap --variant=minbase bookworm "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    echo "build_images: debootstrap failed (log above)" >&2
    return 1
  }
  tar -C "$tmp/root" -c . | podman import --quiet --change "LABEL $label=$want" - localhost/ood-mt-lab-rootfs:latest >/dev/null
  printf '%s\n' "$want" >"$hash_out"
}

build_image() { # name parent-image parent-hash inputs...
  local name="$1" parent="$2" parent_hash="$3"
  shift 3
  local want have arg
  want="$(hash_inputs "$parent_hash" "containerfiles/$name.Containerfile" "$@")"
  have="$(image_hash "ood-mt-lab-$name")"
  if ((force == 0)) && [[ "$have" == "$want" ]]; then
    log "ood-mt-lab-$name up to date"
  else
    log "building ood-mt-lab-$name"
    if [[ "$name" == base ]]; then arg="ROOTFS_IMAGE=$parent"; else arg="BASE_IMAGE=$parent"; fi
    podman build --quiet --pull=never --build-arg "$arg" --label "$label=$want" \
      -f "$lab_dir/containerfiles/$name.Containerfile" -t "localhost/ood-mt-lab-$name:latest" "$lab_dir" >/dev/null
  fi
  printf '%s\n' "$want" >"$hash_out"
}

hash_out="$(mktemp)"
trap 'rm -f "$hash_out"' EXIT
ensure_rootfs
rootfs_hash="$(cat "$hash_out")"
build_image base localhost/ood-mt-lab-rootfs:latest "$rootfs_hash" users.conf files/common
base_hash="$(cat "$hash_out")"
build_image slurm localhost/ood-mt-lab-base:latest "$base_hash" files/slurm
build_image compute localhost/ood-mt-lab-base:latest "$base_hash" files/compute
build_image ood localhost/ood-mt-lab-base:latest "$base_hash" files/ood
