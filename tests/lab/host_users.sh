#!/usr/bin/env bash
# Test users and groups of the host lab, and their Slurm accounting records. Idempotent.
# Run as root after tests/lab/host_slurm.sh has Slurm up (host_slurm.sh start calls it).
#
#   group mtusr    publisher group        group mtclass   tenant group
#   mtpub    supplementary groups mtusr, mtclass        onboarded to WCKey multitenant
#   mtrecv   supplementary group mtclass                onboarded to WCKey multitenant
#   mtrecv2  PRIMARY group mtclass, no supplementary    onboarded to WCKey multitenant
#   mtout    outsider: own group only                   NOT on the WCKey, so its
#                                                       --wckey=multitenant jobs fail
#
# All four (and root) get an association in account mtlab (root keeps account root) and
# the empty WCKey "" as their default, because with AccountingStorageEnforce=wckeys a
# user without any WCKey association cannot submit at all.
# Onboarding here uses plain sacctmgr on purpose, so the lab does not depend on the
# sacctmgr_wckey module that the tests exercise.
set -euo pipefail

readonly CLUSTER_NAME="${OOD_MT_SLURM_CLUSTER:-hostlab}"
readonly LAB_ACCOUNT="${OOD_MT_SLURM_ACCOUNT:-mtlab}"
readonly SITE_WCKEY="multitenant"
readonly SLURM_USERS=(mtpub mtrecv mtrecv2 mtout)
readonly WCKEY_USERS=(mtpub mtrecv mtrecv2)

log() { printf 'host_users: %s\n' "$*" >&2; }
die() {
  printf 'host_users: ERROR: %s\n' "$*" >&2
  exit 1
}

[[ "$(id -u)" == 0 ]] || die "must run as root (it runs useradd and sacctmgr)"

ensure_group() {
  local group="$1"
  getent group "$group" >/dev/null || {
    groupadd "$group"
    log "created group $group"
  }
}

# ensure_user NAME PRIMARY_GROUP SUPPLEMENTARY(comma list or empty)
# PRIMARY_GROUP empty means a private group named like the user.
ensure_user() {
  local name="$1" primary="$2" supplementary="$3" args=(--create-home --shell /bin/bash)
  if ! getent passwd "$name" >/dev/null; then
    if [[ -n "$primary" ]]; then args+=(--no-user-group --gid "$primary"); else args+=(--user-group); fi
    [[ -n "$supplementary" ]] && args+=(--groups "$supplementary")
    useradd "${args[@]}" "$name"
    log "created user $name"
  fi
  # Repair group membership of a user left over from another setup.
  if [[ -n "$primary" && "$(id -gn "$name")" != "$primary" ]]; then
    usermod --gid "$primary" "$name"
  fi
  local want have
  want="$(tr ',' '\n' <<<"$supplementary" | sed '/^$/d' | sort | paste -sd, -)"
  have="$(id -Gn "$name" | tr ' ' '\n' | grep -vxF "$(id -gn "$name")" | sort | paste -sd, - || true)"
  if [[ "$want" != "$have" ]]; then
    usermod --groups "$supplementary" "$name"
    log "set supplementary groups of $name to '${supplementary}'"
  fi
  local home
  home="$(getent passwd "$name" | cut -d: -f6)"
  if [[ ! -d "$home" ]]; then
    install -d -m 0750 -o "$name" -g "$(id -gn "$name")" "$home"
  fi
}

ensure_group mtusr
ensure_group mtclass
ensure_user mtpub "" "mtusr,mtclass"
ensure_user mtrecv "" "mtclass"
ensure_user mtrecv2 mtclass ""
ensure_user mtout "" ""

# ---------------------------------------------------------------- Slurm records

sacct_list() { sacctmgr --noheader --parsable2 "$@"; }
join_by_comma() {
  local IFS=,
  printf '%s' "$*"
}

# missing_from LIST_OUTPUT NAME...: names not present as a line of LIST_OUTPUT
missing_from() {
  local have="$1" name
  shift
  for name in "$@"; do
    grep -qxF "$name" <<<"$have" || printf '%s\n' "$name"
  done
}

if ! sacct_list list account format=account | grep -qxF "$LAB_ACCOUNT"; then
  sacctmgr -i add account "$LAB_ACCOUNT" cluster="$CLUSTER_NAME" \
    description="ood-mt host lab" organization="ood-mt" >/dev/null
  log "added account $LAB_ACCOUNT"
fi

have_assoc="$(sacct_list list association cluster="$CLUSTER_NAME" account="$LAB_ACCOUNT" format=user)"
mapfile -t need_assoc < <(missing_from "$have_assoc" "${SLURM_USERS[@]}")
if ((${#need_assoc[@]})); then
  sacctmgr -i add user "$(join_by_comma "${need_assoc[@]}")" cluster="$CLUSTER_NAME" \
    account="$LAB_ACCOUNT" defaultaccount="$LAB_ACCOUNT" >/dev/null
  log "added associations in $LAB_ACCOUNT for ${need_assoc[*]}"
fi

# Empty WCKey first: a user's first WCKey becomes its default, and plain jobs must keep
# running without --wckey.
have_empty="$(sacct_list list wckey cluster="$CLUSTER_NAME" format=wckey,user | awk -F'|' '$1 == "" {print $2}')"
mapfile -t need_empty < <(missing_from "$have_empty" root "${SLURM_USERS[@]}")
if ((${#need_empty[@]})); then
  sacctmgr -i add user "$(join_by_comma "${need_empty[@]}")" cluster="$CLUSTER_NAME" wckey= >/dev/null
  log "added the empty WCKey for ${need_empty[*]}"
fi
defaults="$(sacct_list list user format=user,defaultwckey | awk -F'|' '$2 == "" {print $1}')"
mapfile -t need_default < <(missing_from "$defaults" root "${SLURM_USERS[@]}")
if ((${#need_default[@]})); then
  sacctmgr -i modify user where name="$(join_by_comma "${need_default[@]}")" cluster="$CLUSTER_NAME" \
    set defaultwckey= >/dev/null
  log "set the empty WCKey as default for ${need_default[*]}"
fi

have_site="$(sacct_list list wckey cluster="$CLUSTER_NAME" format=wckey,user | awk -F'|' -v k="$SITE_WCKEY" '$1 == k {print $2}')"
mapfile -t need_site < <(missing_from "$have_site" "${WCKEY_USERS[@]}")
if ((${#need_site[@]})); then
  sacctmgr -i add user "$(join_by_comma "${need_site[@]}")" cluster="$CLUSTER_NAME" wckey="$SITE_WCKEY" >/dev/null
  log "added WCKey $SITE_WCKEY for ${need_site[*]}"
fi
# mtout must stay off the WCKey: tests prove that its --wckey jobs are refused.
if grep -qxF mtout <<<"$have_site"; then
  sacctmgr -i delete user name=mtout cluster="$CLUSTER_NAME" wckey="$SITE_WCKEY" >/dev/null
  log "removed mtout from WCKey $SITE_WCKEY (it is the outsider)"
fi
