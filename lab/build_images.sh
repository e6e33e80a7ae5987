#!/usr/bin/env bash
# Build the lab's podman images, each cached by a hash of its inputs.
#
#   ood-mt-lab-rootfs   debootstrap --variant=minbase <suite>, imported (no registry, no pulls)
#   ood-mt-lab-base     systemd, munge, Slurm client, Python, lab users (containerfiles/base)
#   ood-mt-lab-slurm    MariaDB, slurmdbd, slurmctld
#   ood-mt-lab-compute  slurmd, PostgreSQL, MariaDB, Python, openssl, gzip
#   ood-mt-lab-ood      OOD layout, Ruby + ActiveSupport, Slurm client, psql
#
# The generation (Debian release and its versions) is OOD_MT_LAB_GENERATION (default
# bookworm; lab/generation.sh): images are tagged :<generation> (the default one also
# :latest), and lab/generations/<generation>.env reaches the Containerfiles as build args.
# An image is rebuilt only when the hash of its Containerfile, the files it copies, the
# generation file and its parent's hash differ from the hash stored in its label
# org.ood-mt.lab.input-hash (so each generation is cached on its own).
# usage: [OOD_MT_LAB_GENERATION=trixie] lab/build_images.sh [--force]
set -euo pipefail

lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
label=org.ood-mt.lab.input-hash
force=0
[[ "${1:-}" == "--force" ]] && force=1

# shellcheck source=lab/generation.sh
source "$lab_dir/generation.sh"

log() { printf 'build_images[%s]: %s\n' "$lab_generation" "$*"; }

tag_args() { # image -> -t arguments: :<generation>, and :latest for the default generation
  printf -- '-t\nlocalhost/%s:%s\n' "$1" "$lab_generation"
  if [[ "$lab_generation" == "$lab_default_generation" ]]; then
    printf -- '-t\nlocalhost/%s:latest\n' "$1"
  fi
}

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
  podman image inspect --format "{{index .Labels \"$label\"}}" "localhost/$1:$lab_generation" 2>/dev/null || true
}

hash_inputs() { # parent-hash paths... -> sha256 over the parent hash and every file's path+content
  local parent="$1"
  shift
  {
    printf 'parent %s\n' "$parent"
    (cd "$lab_dir" && find "$@" "generations/$lab_generation.env" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -d' ' -f1
}

ensure_rootfs() {
  local mirror want have tmp
  mirror="$(debian_mirror)"
  want="$(printf 'debootstrap minbase %s %s rootfs-v1\n' "$LAB_SUITE" "$mirror" | sha256sum | cut -d' ' -f1)"
  have="$(image_hash ood-mt-lab-rootfs)"
  if ((force == 0)) && [[ "$have" == "$want" ]]; then
    log "ood-mt-lab-rootfs up to date"
    printf '%s\n' "$want" >"$hash_out"
    return
  fi
  log "ood-mt-lab-rootfs: debootstrap $LAB_SUITE from $mirror"
  tmp="$(mktemp -d /var/tmp/ood-mt-lab-rootfs.XXXXXX)"
  # shellcheck disable=SC2064  # expand now: the trap must remove this directory
  trap "rm -rf '$tmp'" RETURN
  debootstrap --variant=minbase "$LAB_SUITE" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    echo "build_images: debootstrap failed (log above)" >&2
    return 1
  }
  tar -C "$tmp/root" -c . | podman import --quiet --change "LABEL $label=$want" - \
    "localhost/ood-mt-lab-rootfs:$lab_generation" >/dev/null
  if [[ "$lab_generation" == "$lab_default_generation" ]]; then
    podman tag "localhost/ood-mt-lab-rootfs:$lab_generation" localhost/ood-mt-lab-rootfs:latest
  fi
  printf '%s\n' "$want" >"$hash_out"
}

build_image() { # name parent-image parent-hash inputs...
  local name="$1" parent="$2" parent_hash="$3"
  shift 3
  local want have arg
  local -a tags
  want="$(hash_inputs "$parent_hash" "containerfiles/$name.Containerfile" "$@")"
  have="$(image_hash "ood-mt-lab-$name")"
  if ((force == 0)) && [[ "$have" == "$want" ]]; then
    log "ood-mt-lab-$name up to date"
  else
    log "building ood-mt-lab-$name"
    if [[ "$name" == base ]]; then arg="ROOTFS_IMAGE=$parent"; else arg="BASE_IMAGE=$parent"; fi
    mapfile -t tags < <(tag_args "ood-mt-lab-$name")
    podman build --quiet --pull=never --build-arg "$arg" "${lab_build_args[@]}" --label "$label=$want" \
      -f "$lab_dir/containerfiles/$name.Containerfile" "${tags[@]}" "$lab_dir" >/dev/null
  fi
  printf '%s\n' "$want" >"$hash_out"
}

hash_out="$(mktemp)"
trap 'rm -f "$hash_out"' EXIT
ensure_rootfs
rootfs_hash="$(cat "$hash_out")"
build_image base "localhost/ood-mt-lab-rootfs:$lab_generation" "$rootfs_hash" users.conf files/common
base_hash="$(cat "$hash_out")"
build_image slurm "localhost/ood-mt-lab-base:$lab_generation" "$base_hash" files/slurm
build_image compute "localhost/ood-mt-lab-base:$lab_generation" "$base_hash" files/compute
build_image ood "localhost/ood-mt-lab-base:$lab_generation" "$base_hash" files/ood
