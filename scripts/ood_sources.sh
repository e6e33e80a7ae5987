#!/usr/bin/env bash
# Print the folder holding Open OnDemand's own sources, the tests' dependency (never part of
# the kit; docs/testing.md): the first of
#   1. $OOD_MT_OOD_SOURCE, when set (it must then be complete);
#   2. ../shared/ood next to the checkout, then /work/shared/ood (this workplace's copy);
#   3. .lab/ood-sources, filled by `git clone` of the pinned tags when github.com answers.
# Prints nothing (and says why on stderr) when none is there: the tests that need OOD's code
# then skip, saying so. Exit status 0 either way.
#
#   OOD_MT_OOD_SOURCE="$(bash scripts/ood_sources.sh)"
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The trees the tests load, with the upstream repository and tag of each.
trees=(
  "ondemand-4.2.3 https://github.com/OSC/ondemand v4.2.3 apps/dashboard"
  "ondemand-3.1.14 https://github.com/OSC/ondemand v3.1.14 apps/dashboard"
  "ood_core-0.31.1 https://github.com/OSC/ood_core v0.31.1 lib"
  "ood_core-0.25.0 https://github.com/OSC/ood_core v0.25.0 lib"
  "ood_support-0.0.5 https://github.com/OSC/ood_support v0.0.5 lib"
)

complete() {
  local dir="$1" entry name _url _tag sub
  for entry in "${trees[@]}"; do
    read -r name _url _tag sub <<<"$entry"
    [[ -d "$dir/$name/$sub" ]] || return 1
  done
}

if [[ -n "${OOD_MT_OOD_SOURCE:-}" ]]; then
  if complete "$OOD_MT_OOD_SOURCE"; then
    printf '%s\n' "$OOD_MT_OOD_SOURCE"
  else
    echo "ood_sources: OOD_MT_OOD_SOURCE=$OOD_MT_OOD_SOURCE lacks some of: ${trees[*]%% *}" >&2
  fi
  exit 0
fi

for candidate in "$repo_root/../shared/ood" /work/shared/ood "$repo_root/.lab/ood-sources"; do
  if complete "$candidate"; then
    (cd "$candidate" && pwd)
    exit 0
  fi
done

dest="$repo_root/.lab/ood-sources"
if ! timeout 20 git ls-remote https://github.com/OSC/ood_support >/dev/null 2>&1; then
  echo "ood_sources: OOD's sources are not on this machine and github.com cannot be reached;" \
    "the tests that run OOD's code will skip (set OOD_MT_OOD_SOURCE)" >&2
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
for entry in "${trees[@]}"; do
  read -r name url tag sub <<<"$entry"
  [[ -d "$dest/$name/$sub" ]] && continue
  git clone --quiet --depth 1 --branch "$tag" "$url" "$work/$name"
  mkdir -p "$dest/$name/$(dirname "$sub")"
  cp -a "$work/$name/$sub" "$dest/$name/$sub"
  cp -a "$work/$name/LICENSE"* "$dest/$name/" 2>/dev/null || true
done
if complete "$dest"; then
  printf '%s\n' "$dest"
else
  echo "ood_sources: cloning OOD's sources into $dest did not complete" >&2
fi
