#!/usr/bin/env bash
# Make the wheelhouse that the ood_mt_cli role copies to OOD hosts, login and compute nodes:
# the kit's wheel (built from this checkout) and every dependency as a wheel, so the hosts
# install with `pip --no-index` and need no package index.
#
#   bash scripts/wheelhouse.sh [DIR]        # default DIR: build/wheelhouse
#
# The dependencies' wheels match this machine's Python and platform (x86_64, CPython 3.11
# here). Hosts that run another CPython: list their versions in OOD_MT_WHEELHOUSE_PYTHONS
# (e.g. "3.13"), and binary wheels for those (x86_64 manylinux) are added from the index
# (docs/admin-guide.md).
# Idempotent: the kit's wheel is rebuilt every time (old ones removed), dependencies are
# fetched only when missing.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo_root/build/wheelhouse}"
python="${OOD_MT_PYTHON:-${OOD_MT_VENV:-$repo_root/.venv}/bin/python}"
if [[ ! -x "$python" ]]; then
  python=python3
fi

mkdir -p "$out"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# The kit's own wheel (its package data: src/ood_mt, pyproject.toml's package-data). pip builds
# it in the checkout (setuptools writes build/ and *.egg-info there), so two wheelhouses made at
# once (the test suite's two lab generations) take turns.
(
  flock 9
  "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$scratch" "$repo_root"
) 9<"$repo_root/pyproject.toml"
rm -f "$out"/ood_multitenant-*.whl
mv "$scratch"/ood_multitenant-*.whl "$out/"
kit_wheel="$(ls "$out"/ood_multitenant-*.whl)"

# Dependencies: whatever is already in DIR counts; only what is missing is fetched.
"$python" -m pip wheel --quiet --disable-pip-version-check --find-links "$out" --wheel-dir "$out" "$kit_wheel"

# Other CPython versions the hosts run: the same dependencies as binary wheels for them.
read -r -a other_pythons <<<"${OOD_MT_WHEELHOUSE_PYTHONS:-}"
for version in "${other_pythons[@]}"; do
  if [[ ! "$version" =~ ^3\.[0-9]+$ ]]; then
    echo "wheelhouse: OOD_MT_WHEELHOUSE_PYTHONS: '$version' is not a CPython version like 3.13" >&2
    exit 2
  fi
  "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --implementation cp --python-version "$version" \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --find-links "$out" --dest "$out" "$kit_wheel"
done
echo "wheelhouse: $out ($(find "$out" -name '*.whl' | wc -l) wheels; kit: $(basename "$kit_wheel"))"
