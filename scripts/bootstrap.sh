#!/usr/bin/env bash
# Install everything the kit's build, tests and lab need on Debian 12 (run as root).
# Idempotent: packages already present are skipped by apt; the virtualenv is reused.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${OOD_MT_VENV:-$repo_root/.venv}"

apt_packages=(
  # Slurm with accounting, the real daemons the tests run
  slurm-wlm slurmdbd slurm-client munge mariadb-server mariadb-client
  # the initializer runs under Debian's Ruby and ActiveSupport
  ruby ruby-activesupport
  # OOD's own dashboard code (../shared/ood, a test dependency) loads with these
  ruby-activemodel ruby-actionpack ruby-zeitwerk ruby-dotenv ruby-climate-control ruby-ffi ruby-redcarpet
  rsync
  # services the apps run, and their clients
  postgresql postgresql-client
  # linters for rendered scripts and YAML
  shellcheck yamllint
  # a real browser and a real reverse proxy: the shared-web-apps origin test (tests/web)
  chromium apache2
  # the containerised lab
  podman runc debootstrap uidmap fuse-overlayfs
  # job-side protocol tools and test helpers
  openssl gzip coreutils procps iproute2 sudo git ca-certificates
  # the share CLI run as lab users (who cannot read root's venv) in tests/initializer
  python3-click python3-cryptography python3-yaml
  # the share gate (python3 -m ood_mt.gate) as the lab users run it on compute nodes (tests/gate)
  python3-aiohttp
  # a real R Shiny dashboard behind its gate (WebSockets), used by tests/apps/test_run_outsider.py
  r-cran-shiny
)

missing=()
for pkg in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian starts services on install; policy-rc.d keeps the machine quiet, the tests start what they need.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
else
  echo "bootstrap: Debian packages already present"
fi

# podman on this machine kind needs runc and explicit ulimits: with its defaults every
# `podman run` fails ("error setting rlimit type 7: operation not permitted"). Everything that
# runs a container (the lab, Molecule, the tests that run Ruby in the lab images) relies on this.
containers_conf=/etc/containers/containers.conf
if [[ ! -f "$containers_conf" ]]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\n' \
    >"$containers_conf.tmp"
  mv "$containers_conf.tmp" "$containers_conf"
  echo "bootstrap: wrote $containers_conf (runc, ulimits)"
elif ! grep -q '^runtime *= *"runc"' "$containers_conf"; then
  echo "bootstrap: warning: $containers_conf does not set runtime = \"runc\"; podman run may fail" >&2
fi

if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.ood-mt-deps.sha256"
want="$(sha256sum "$repo_root/pyproject.toml" | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "bootstrap: installing Python packages into $venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "${repo_root}[dev]"
  echo "$want" >"$stamp"
else
  echo "bootstrap: Python packages already present in $venv"
fi

# The checkout as the Ansible collection ood_mt.multitenant (for the lab, the tests, Molecule).
bash "$repo_root/scripts/collection_link.sh"
