# shellcheck shell=bash
# Helpers every multitenant service job sources (staged as template/service_helpers.sh).
# Pure bash, no Jinja tags. Publishing itself is mt_share.sh (mt_publish); this file only
# holds the small decisions every service makes the same way.

# Delivery app (card token) that renders a preset on the receiver's sessions page.
mt_delivery_for_preset() {
  case "$1" in
    debug) printf 'sys/mt_delivery_debug' ;;
    document) printf 'sys/mt_delivery_readfile' ;;
    *) printf 'sys/mt_delivery_default' ;;
  esac
}

# Append one status line to this job's own connection.yml (the publisher's card), as a
# double-quoted YAML string with backslash and quote escaped.
mt_service_status() {
  local text="$1"
  text="${text//\\/\\\\}"
  text="${text//\"/\\\"}"
  text="${text//$'\n'/ }"
  printf 'mt_share_status: "%s"\n' "$text" >>./connection.yml
}

# True when the protocol library has been staged (templates/mt_share.sh); without it the
# service still runs for its owner, and says why nothing was shared.
mt_publish_available() {
  declare -F mt_publish >/dev/null 2>&1
}

# mt_service_publish ARGS...: mt_publish with the form's sharing choices, unless the
# publisher chose no sharing. Never fails the job.
mt_service_publish() {
  if [[ "${MT_SHARE_AUDIENCE:-none}" == "none" ]]; then
    echo "ood-mt: sharing is off for this session (audience: none)"
    return 0
  fi
  if ! mt_publish_available; then
    echo "ood-mt: not shared: the publishing library (mt_share.sh) is not installed with this app"
    mt_service_status "not shared: publishing library missing"
    return 0
  fi
  mt_publish --preset "${MT_SHARE_PRESET}" --mode "${MT_SHARE_MODE}" \
    --delivery "$(mt_delivery_for_preset "${MT_SHARE_PRESET}")" --audience "${MT_SHARE_AUDIENCE}" \
    --group "${MT_SHARE_GROUP}" --users "${MT_SHARE_USERS}" "$@" || true
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
