#!/usr/bin/env bash
# The wheelhouse for the lab generation's nodes: scripts/wheelhouse.sh, plus binary wheels
# for the CPython those nodes run, asked of the generation's base image (build the images
# first: lab/build_images.sh).
#   OOD_MT_LAB_GENERATION=trixie bash lab/wheelhouse.sh [DIR]
set -euo pipefail
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/generation.sh
source "$lab_dir/generation.sh"
image="localhost/ood-mt-lab-base:$lab_generation"
nodes_python="$(podman run --rm --network none "$image" \
  python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" || {
  echo "lab/wheelhouse.sh: cannot run python3 in $image; build the images first (lab/build_images.sh)" >&2
  exit 1
}
OOD_MT_WHEELHOUSE_PYTHONS="$nodes_python" exec bash "$lab_dir/../scripts/wheelhouse.sh" "$@"
