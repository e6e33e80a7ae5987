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

# mt_service_publish ARGS...: mt_publish with the form's sharing choices, unless the
# publisher chose no sharing or has unshared the job (`ood-mt unshare`). Never fails the job.
# The outcome reaches the publisher's own card through mt_set_share_status (mt_publish.sh);
# the first publication starts the share agent (mt_agent_start).
mt_service_publish() {
  if [[ "${MT_SHARE_AUDIENCE:-none}" == "none" ]]; then
    echo "ood-mt: sharing is off for this session (audience: none)"
    mt_set_share_status "not shared (sharing is off in the form)"
    return 0
  fi
  if mt_agent_unshared; then
    echo "ood-mt: not published again: you unshared this session"
    mt_set_share_status "not shared: you unshared it at $(<"${MT_AGENT_DIR}/unshared"); the service keeps running"
    return 0
  fi
  if mt_publish --preset "${MT_SHARE_PRESET}" --mode "${MT_SHARE_MODE}" \
    --delivery "$(mt_delivery_for_preset "${MT_SHARE_PRESET}")" --audience "${MT_SHARE_AUDIENCE}" \
    --group "${MT_SHARE_GROUP}" --users "${MT_SHARE_USERS}" "$@"; then
    mt_agent_start
  fi
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
