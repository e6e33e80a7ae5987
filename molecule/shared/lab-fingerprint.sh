#!/usr/bin/env bash
# Print a fingerprint of everything the kit's playbooks may change on a lab node: paths,
# owners, modes and content hashes under every directory a role writes to (Slurm's configs,
# OOD's config and apps, the kit's keys, CLI and its link, the discovery unit, the apps bundle
# and discovery spool, the web-apps proxy config), and (where slurmdbd runs) the WCKey
# associations. The Molecule `check` scenario copies it into each node (shared/snapshot.yml),
# runs it before `site.yml --check --diff` and again in its verifier; on its fresh lab the
# kit's own directories are absent, and must stay so.
# A role that writes somewhere new adds that directory here.
set -euo pipefail
for root in /etc/slurm /etc/ood /var/www/ood /etc/ood-mt /opt/ood-mt /usr/local/bin \
  /etc/systemd/system /var/lib/ood-mt /etc/httpd/conf.d; do
  [[ -e "$root" ]] || { echo "absent $root"; continue; }
  find "$root" -xdev -printf '%p %u:%g %m\n' | LC_ALL=C sort
  find "$root" -xdev -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
done
if systemctl is-active --quiet slurmdbd 2>/dev/null; then
  sacctmgr --noheader --parsable2 list wckey format=wckey,user,cluster | LC_ALL=C sort
fi
