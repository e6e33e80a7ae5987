#!/usr/bin/env bash
# Make the checkout appear as the Ansible collection ood_mt.multitenant, without installing it:
#   .ansible/collections/ansible_collections/ood_mt/multitenant -> ../../../..  (the repository root)
# ansible.cfg's collections_path starts with ./.ansible/collections, so ansible-playbook,
# ansible-doc and the tests find the roles, modules and filters by their FQCNs in the checkout
# (ansible-lint makes the same link itself). Idempotent; .ansible/ is gitignored.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
namespace_dir="$repo_root/.ansible/collections/ansible_collections/ood_mt"
link="$namespace_dir/multitenant"
target="../../../.."

mkdir -p "$namespace_dir"
if [[ -L "$link" && "$(readlink "$link")" == "$target" ]]; then
  exit 0
fi
# anything else there (an installed copy, a link elsewhere) would shadow the checkout
rm -rf "$link"
ln -s "$target" "$link"
