# shellcheck shell=bash
# Helpers every multitenant service job sources (staged as template/service_helpers.sh).
# Pure bash, no Jinja tags. Publishing itself is mt_publish.sh (mt_publish); this file only
# holds the small decisions every service makes the same way.

# Delivery app (card token) that renders a preset on the receiver's sessions page, from the
# build's map MT_PRESET_DELIVERY ("preset=app ... *=app", set by form_env.sh.erb).
mt_delivery_for_preset() {
  local pair fallback="" pairs=()
  read -r -a pairs <<<"${MT_PRESET_DELIVERY:-}"
  for pair in "${pairs[@]}"; do
    case "${pair%%=*}" in
      "$1") printf 'sys/%s' "${pair#*=}" && return 0 ;;
      "*") fallback=${pair#*=} ;;
    esac
  done
  [[ -n $fallback ]] || { echo "ood-mt: MT_PRESET_DELIVERY is empty; rebuild the app with ood-mt build" >&2 && return 1; }
  printf 'sys/%s' "$fallback"
}

# mt_service_publish ARGS...: mt_publish with the sharing choices, unless the publisher chose
# no sharing or has unshared the job (`ood-mt unshare`, expiry). Never fails the job; sets
# MT_PUBLISH_OK (1 when published). The choices are the form's (MT_SHARE_*) until the share
# agent holds the current ones ($MT_AGENT_DIR/share, changed by `ood-mt share`): audience,
# group, users, preset, the publication's `created`, the status line receivers see (conn key
# x_status, docs/protocol.md) and the expiry. The outcome reaches the publisher's own card
# through mt_set_share_status; the first publication starts the share agent (mt_agent_start)
# with the form's expiry (MT_SHARE_UNTIL, "Share until").
mt_service_publish() {
  MT_PUBLISH_OK=0
  if [[ "${MT_SHARE_AUDIENCE:-none}" == "none" ]]; then
    echo "ood-mt: sharing is off for this session (audience: none)"
    mt_set_share_status "not shared (sharing is off in the form)"
    return 0
  fi
  if mt_agent_unshared; then
    echo "ood-mt: not published again: the share was ended ($(<"${MT_AGENT_DIR}/unshared"))"
    mt_set_share_status "not shared: $(<"${MT_AGENT_DIR}/unshared"); the service keeps running"
    return 0
  fi
  local audience="${MT_SHARE_AUDIENCE}" group="${MT_SHARE_GROUP}" users="${MT_SHARE_USERS}"
  local preset="${MT_SHARE_PRESET}" now
  local -a extra=()
  # shellcheck disable=SC2034 # read by the share agent (mt__agent_republish, mt_publish.sh)
  MT_PUBLISH_ARGS=("$@")
  if mt_agent_settings; then
    audience="${MT_REQ[audience]}" group="${MT_REQ[group]:-}" users="${MT_REQ[users]:-}"
    preset="${MT_REQ[preset]:-${preset}}"
    [[ -z "${MT_REQ[created]:-}" ]] || extra+=(--created "${MT_REQ[created]}")
    [[ -z "${MT_REQ[status]:-}" ]] || extra+=(--conn "x_status=${MT_REQ[status]}")
  elif [[ -n "${MT_SHARE_UNTIL:-}" && -z "${MT_SHARE_UNTIL_EPOCH:-}" ]]; then
    printf -v now '%(%s)T' -1
    if ! mt_until_epoch "${MT_SHARE_UNTIL}" "${now}"; then
      mt__fail "form field 'Share until': ${MT_ERROR}; fix it in the form" || true
      return 0
    fi
    MT_SHARE_UNTIL_EPOCH="${MT_UNTIL_EPOCH}"
  fi
  if mt_publish --preset "${preset}" --mode "${MT_SHARE_MODE}" \
    --delivery "$(mt_delivery_for_preset "${preset}")" --audience "${audience}" \
    --group "${group}" --users "${users}" "$@" "${extra[@]}"; then
    # shellcheck disable=SC2034 # read by the share agent (mt__agent_share, mt_publish.sh)
    MT_PUBLISH_OK=1
    MT_SHARE_BASE_STATUS="${MT_SHARE_STATUS_TEXT}"
    mt_agent_start
    mt_service_status "${MT_SHARE_BASE_STATUS}"
  fi
}

# mt_service_status BASE: the publisher's card line: BASE, then the expiry and the published
# status from the share agent's settings.
mt_service_status() {
  local line="$1"
  if mt_agent_settings; then
    [[ -z "${MT_REQ[until]:-}" ]] || line+="; until $(date -d "@${MT_REQ[until]}" '+%F %T')"
    [[ -z "${MT_REQ[status]:-}" ]] || line+="; status: ${MT_REQ[status]}"
  fi
  mt_set_share_status "${line}"
}

# OOD's job script (ood_core's basic template) installs no signal handler, so a TERM sent
# to the batch shell alone (sbatch --signal=B:TERM@N before the walltime, scancel -b)
# would kill that shell and leave the service to be SIGKILLed with the job. before.sh,
# which that shell sources, installs this handler: pass TERM on to script.sh (SCRIPT_PID
# is the template's variable), wait until it has stopped its service, end the job.
mt_stop_on_term() {
  trap - TERM
  echo "ood-mt: SIGTERM: stopping the service cleanly"
  if [[ -n "${SCRIPT_PID:-}" ]]; then
    kill -TERM "${SCRIPT_PID}" 2>/dev/null || true
    wait "${SCRIPT_PID}" 2>/dev/null || true
  fi
  exit 0
}

# Load environment modules when the site lists any (no-op on sites without Lmod).
mt_load_modules() {
  local module_name
  [[ "$#" -eq 0 ]] && return 0
  if ! declare -F module >/dev/null 2>&1 && ! command -v module >/dev/null 2>&1; then
    echo "ood-mt: the site lists modules ($*) but 'module' is not available on $(hostname)" >&2
    return 1
  fi
  for module_name in "$@"; do
    module load "$module_name"
  done
}
