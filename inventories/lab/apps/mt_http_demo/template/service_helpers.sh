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

# shellcheck shell=bash
# The share gate in a service job (docs/gate.md): the service listens on 127.0.0.1 only, the
# gate (python -m ood_mt.gate, an authenticating reverse proxy) listens on the shared port and
# passes on only requests that carry the share's secret. Pure bash, no Jinja tags; staged in
# template/service_helpers.sh. The secret is made fresh for every job in a 0700 directory of
# the session and reaches the gate as a file and receivers inside the encrypted share: never
# argv, the service's environment, logs or the job's output.
#
#   before.sh:  port="$(find_port "${host}")"; MT_GATE_PYTHON=...; mt_gate_prepare
#   script.sh:  mt_gate_run [gate options, e.g. --policy ollama] -- SERVICE COMMAND...
#               (the service gets port=<its loopback port> in its environment)
#   after.sh:   if mt_gate_wait 120; then mt_service_publish ... --conn gate_secret="$(mt_gate_secret)"; fi

# mt_gate_prepare: in before.sh, after `port` (the shared port) is set. Picks the service's
# loopback port (svc_port), checks the gate can run with MT_GATE_PYTHON and writes a fresh
# secret. When the gate cannot run, MT_GATE_OK=0 and MT_GATE_PROBLEM say why: the service
# then runs on loopback only and is not shared.
# host and port: the job script (OOD) and before.sh.
# shellcheck disable=SC2154
mt_gate_prepare() {
  local out ephemeral_low=0 max_port=65535
  MT_GATE_OK=0
  MT_GATE_PROBLEM=""
  MT_GATE_DIR="${PWD}/mt_gate"
  MT_GATE_PYTHON="${MT_GATE_PYTHON:-/opt/ood-mt/venv/bin/python}"
  # The service's loopback port comes from below the kernel's ephemeral range: find_port only
  # sees listeners, and a port that is some outgoing connection's source port (slurmd, the
  # gate's upstream, any client on a busy node) is free to it yet refuses the service's bind.
  read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  if ((ephemeral_low > 3000)); then max_port=$((ephemeral_low - 1)); fi
  svc_port="$(find_port 127.0.0.1 2000 "${max_port}")"
  while [[ "${svc_port}" == "${port}" ]]; do
    svc_port="$(find_port 127.0.0.1 2000 "${max_port}")"
  done
  export svc_port MT_GATE_DIR MT_GATE_PYTHON MT_GATE_OK MT_GATE_PROBLEM
  if ! out="$("${MT_GATE_PYTHON}" -m ood_mt.gate --check 2>&1)"; then
    MT_GATE_PROBLEM="the share gate cannot run with ${MT_GATE_PYTHON}: ${out//$'\n'/ }"
    echo "ood-mt: ${MT_GATE_PROBLEM}. The service listens on this node's loopback only and is NOT shared without its gate; ask the site to install the kit on the compute nodes (role ood_mt_cli) or to set gate_python in the site file" >&2
    return 0
  fi
  rm -rf -- "${MT_GATE_DIR}"
  if ! (umask 077 && mkdir -- "${MT_GATE_DIR}") ||
    ! out="$("${MT_GATE_PYTHON}" -m ood_mt.gate --write-secret "${MT_GATE_DIR}/secret" 2>&1)"; then
    MT_GATE_PROBLEM="could not make the share gate's secret in ${MT_GATE_DIR}: ${out//$'\n'/ }"
    echo "ood-mt: ${MT_GATE_PROBLEM}; nothing will be shared" >&2
    return 0
  fi
  MT_GATE_OK=1
}

# mt_gate_run [GATE OPTION...] -- COMMAND...: in script.sh. Starts the gate on 0.0.0.0:$port in
# front of 127.0.0.1:$svc_port (when mt_gate_prepare found it can run), then COMMAND with
# port=$svc_port in its environment; TERM/INT stop both; when COMMAND ends the gate ends.
# Returns COMMAND's exit status.
# host and port: the job script (OOD) and before.sh.
# shellcheck disable=SC2154
mt_gate_run() {
  local gate_args=() rc=0
  while [[ "$#" -gt 0 && "$1" != "--" ]]; do
    gate_args+=("$1")
    shift
  done
  [[ "${1:-}" == "--" ]] && shift
  MT_GATE_PID=""
  if [[ "${MT_GATE_OK:-0}" == 1 ]]; then
    echo "ood-mt: share gate on 0.0.0.0:${port} in front of 127.0.0.1:${svc_port}"
    "${MT_GATE_PYTHON}" -m ood_mt.gate --listen "0.0.0.0:${port}" --upstream "http://127.0.0.1:${svc_port}" \
      --secret-file "${MT_GATE_DIR}/secret" --ready-file "${MT_GATE_DIR}/ready" "${gate_args[@]}" </dev/null &
    MT_GATE_PID=$!
    # The share agent (mt_publish.sh) sends SIGHUP here after writing a new secret.
    printf '%s\n' "${MT_GATE_PID}" >"${MT_GATE_DIR}/gate.pid"
  fi
  port="${svc_port}" "$@" &
  MT_SERVICE_PID=$!
  trap 'mt__gate_stop; exit 0' TERM INT
  wait "${MT_SERVICE_PID}" || rc=$?
  mt__gate_stop
  return "${rc}"
}

mt__gate_stop() {
  trap - TERM INT
  if [[ -n "${MT_SERVICE_PID:-}" ]]; then
    kill -TERM "${MT_SERVICE_PID}" 2>/dev/null || true
    wait "${MT_SERVICE_PID}" 2>/dev/null || true
  fi
  if [[ -n "${MT_GATE_PID:-}" ]]; then
    kill -TERM "${MT_GATE_PID}" 2>/dev/null || true
    wait "${MT_GATE_PID}" 2>/dev/null || true
  fi
}

# mt_gate_wait SECONDS: in after.sh. 0 once the service listens on 127.0.0.1:$svc_port and the
# gate is ready on $port; otherwise says why in the job's output and on the publisher's card.
# host and port: the job script (OOD) and before.sh.
# shellcheck disable=SC2154
mt_gate_wait() {
  local waited=0
  if ! wait_until_port_used "127.0.0.1:${svc_port}" "$1"; then
    echo "ood-mt: nothing listened on 127.0.0.1:${svc_port} (the service's loopback port, \$port in its environment); nothing shared. The service must listen on 127.0.0.1 and the port in \$port" >&2
    mt_set_share_status "not shared: the service did not listen on 127.0.0.1:${svc_port}"
    return 1
  fi
  if [[ "${MT_GATE_OK:-0}" != 1 ]]; then
    mt_set_share_status "not shared: ${MT_GATE_PROBLEM:-the share gate is not running}"
    return 1
  fi
  while [[ ! -s "${MT_GATE_DIR}/ready" ]]; do
    if ((waited >= 60)); then
      echo "ood-mt: the share gate did not get ready on ${host}:${port} within 60 s; nothing shared" >&2
      mt_set_share_status "not shared: the share gate did not start"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  # The publisher's own card opens the service through the gate too.
  mt_conn_param mt_gate_secret "$(mt_gate_secret)"
}

# mt_gate_secret: prints the share's gate secret (for --conn gate_secret=...; never echo it).
mt_gate_secret() {
  printf '%s' "$(<"${MT_GATE_DIR}/secret")"
}
