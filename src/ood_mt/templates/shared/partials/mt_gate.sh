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
