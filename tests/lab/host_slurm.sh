#!/usr/bin/env bash
# A real single-node Slurm 22.05 with accounting on THIS machine, for the test suite.
#
#   tests/lab/host_slurm.sh start    start (or repair) munged, MariaDB, slurmdbd, slurmctld,
#                                    slurmd; then create the test users (host_users.sh)
#   tests/lab/host_slurm.sh stop     stop the daemons this script manages
#   tests/lab/host_slurm.sh status   one line per daemon; exit 0 only when all are healthy
#   tests/lab/host_slurm.sh env      shell exports describing this cluster (eval "$(... env)")
#   tests/lab/host_slurm.sh cancel-jobs
#                                    cancel every job in the queue (scripts/test.sh, before the
#                                    slurm part: jobs left by a killed run keep services running)
#
# Must run as root on a disposable Debian 12 test machine (it owns /etc/slurm). Idempotent:
# a second `start` with daemons running on the same configuration does nothing; a stale
# daemon, pid file or port left over from an earlier run is stopped and started cleanly.
# Every start step waits on a health check with a timeout and, on failure, names the step
# and the log file to read. Logs: /var/log/ood-mt-lab/. Pre-existing /etc/slurm/*.conf
# files not written by this script are copied once to /var/lib/ood-mt-lab/preexisting/.
#
# How this lab differs from a production cluster, and why:
# - Everything on one host, daemons started by hand without systemd (CI has no systemd).
# - ProctrackType=proctrack/linuxproc, TaskPlugin=task/none, JobAcctGatherType=none:
#   no cgroups in CI sandboxes; production uses proctrack/cgroup + task/cgroup.
# - slurmctld and slurmd are started as root; slurmctld drops to SlurmUser=slurm, which
#   must equal slurmdbd's SlurmUser or slurmctld refuses slurmdbd's association updates.
# - The node is declared with CPUs=64 and RealMemory=262144 while the machine has 2 cores
#   and 24 GiB, with SlurmdParameters=config_overrides so slurmd accepts the difference:
#   the suites run dozens of small, mostly idle service/share jobs at once. Production
#   declares the real hardware (`slurmd -C`). Memory is not a consumable (CR_Core).
# - MaxJobCount=50000: a discovery benchmark queues 10,000 held jobs (production default
#   is 10,000 and sites size it themselves).
# - One partition `debug`, Default=YES, MaxTime=UNLIMITED: service jobs of any length;
#   production partitions have time limits.
# - PrivateData is deliberately unset: the kit needs receivers to see publishers' jobs in
#   squeue (see docs/architecture.md, Discovery). Sites with PrivateData=jobs cannot use it.
# - TrackWCKey=yes in both configs and AccountingStorageEnforce=associations,wckeys: the
#   same enforcement as the production clusters the kit targets. OOD_MT_SLURM_ENFORCE
#   replaces the enforcement list for one start (a test of `enforce_wckeys: false` sites:
#   users then choose any WCKey string); the next plain start puts the default back.
# - MariaDB runs with --skip-networking, and slurmdbd authenticates to it through the unix
#   socket (MariaDB `unix_socket` plugin), so there is no database password anywhere.
set -euo pipefail

readonly CLUSTER_NAME="hostlab"
readonly PARTITION_NAME="debug"
readonly LAB_ACCOUNT="mtlab"
readonly LOG_DIR="/var/log/ood-mt-lab"
readonly STATE_DIR="/var/lib/ood-mt-lab"
readonly RUN_DIR="/run/ood-mt-lab"
readonly SLURM_ETC="/etc/slurm"
readonly MUNGE_KEY="/etc/munge/munge.key"
readonly MYSQL_SOCKET="/run/mysqld/mysqld.sock"
readonly MARKER="# Managed by ood-multitenant tests/lab/host_slurm.sh; edits are overwritten."
readonly SLURMCTLD_PORT=6817
readonly SLURMD_PORT=6818
readonly SLURMDBD_PORT=6819
NODE_NAME="$(hostname -s)"
readonly NODE_NAME
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
HEALTH_TIMEOUT="${OOD_MT_LAB_TIMEOUT:-60}"
readonly HEALTH_TIMEOUT

export SLURM_CONF="$SLURM_ETC/slurm.conf"

log() { printf 'host_slurm: %s\n' "$*" >&2; }
die() {
  printf 'host_slurm: ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------- configuration text

slurm_conf_text() {
  cat <<EOF
$MARKER
ClusterName=$CLUSTER_NAME
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurm/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
MaxJobCount=50000
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$SLURMDBD_PORT
AccountingStorageEnforce=${OOD_MT_SLURM_ENFORCE:-associations,wckeys}
TrackWCKey=yes
JobCompType=jobcomp/none
NodeName=$NODE_NAME NodeAddr=127.0.0.1 CPUs=64 RealMemory=262144 State=UNKNOWN
PartitionName=$PARTITION_NAME Nodes=$NODE_NAME Default=YES MaxTime=UNLIMITED State=UP
EOF
}

slurmdbd_conf_text() {
  cat <<EOF
$MARKER
# No StoragePass: MariaDB authenticates the 'slurm' OS user through its unix socket.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=localhost
DbdPort=$SLURMDBD_PORT
SlurmUser=slurm
PidFile=$RUN_DIR/slurm/slurmdbd.pid
LogFile=$LOG_DIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
TrackWCKey=yes
EOF
}

# ---------------------------------------------------------------- small helpers

# install_file DEST OWNER:GROUP MODE < content. Writes a temp file next to DEST and renames
# it into place, so a reader never sees half a file.
install_file() {
  local dest="$1" owner="$2" mode="$3" tmp
  tmp="$(mktemp "$dest.tmp.XXXXXX")"
  cat >"$tmp"
  chown "$owner" "$tmp"
  chmod "$mode" "$tmp"
  if [[ -f "$dest" ]] && cmp -s "$tmp" "$dest" &&
    [[ "$(stat -c '%U:%G %a' "$dest")" == "$(stat -c '%U:%G %a' "$tmp")" ]]; then
    rm -f "$tmp"
    return 0
  fi
  if [[ -f "$dest" ]] && ! grep -qxF "$MARKER" "$dest"; then
    local backup
    backup="$STATE_DIR/preexisting/$(basename "$dest")"
    if [[ ! -e "$backup" ]]; then
      cp -a "$dest" "$backup"
      log "kept a copy of the pre-existing $dest in $backup"
    fi
  fi
  mv -f "$tmp" "$dest"
  log "wrote $dest"
}

# pid_alive PID NAME: PID runs a process whose command name is NAME.
pid_alive() {
  local pid="$1" name="$2" comm
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  [[ "$comm" == "$name" ]]
}

pid_from_file() {
  local file="$1" pid
  [[ -r "$file" ]] || return 1
  pid="$(tr -dc '0-9' <"$file")"
  [[ -n "$pid" ]] || return 1
  printf '%s\n' "$pid"
}

# our_pids NAME: processes named NAME in this PID namespace (a daemon left over from an
# earlier run without a pid file). Processes inside the podman lab's containers live in
# other PID namespaces and are never touched.
our_pids() {
  local name="$1" my_ns entry pid
  my_ns="$(readlink /proc/self/ns/pid 2>/dev/null || true)"
  for entry in /proc/[0-9]*; do
    pid="${entry#/proc/}"
    [[ "$pid" == "$$" ]] && continue
    pid_alive "$pid" "$name" || continue
    if [[ -n "$my_ns" && "$(readlink "/proc/$pid/ns/pid" 2>/dev/null || true)" != "$my_ns" ]]; then
      continue
    fi
    printf '%s\n' "$pid"
  done
}

# daemon_running NAME PIDFILE: true when the pid file names a live NAME process.
daemon_running() {
  local name="$1" pidfile="$2" pid
  pid="$(pid_from_file "$pidfile")" || return 1
  pid_alive "$pid" "$name"
}

# stop_daemon NAME PIDFILE: stop the daemon from the pid file and any stale copy in our PID
# namespace; TERM, then KILL after 15 s. Removes the pid file.
stop_daemon() {
  local name="$1" pidfile="$2" pids=() pid i
  if pid="$(pid_from_file "$pidfile")" && pid_alive "$pid" "$name"; then
    pids+=("$pid")
  fi
  while read -r pid; do
    [[ -n "$pid" && ! " ${pids[*]} " =~ \ $pid\  ]] && pids+=("$pid")
  done < <(our_pids "$name")
  if ((${#pids[@]})); then
    log "stopping $name (pid ${pids[*]})"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
      local alive=0
      for pid in "${pids[@]}"; do pid_alive "$pid" "$name" && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do
      if pid_alive "$pid" "$name"; then
        log "$name pid $pid ignored TERM for 15 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  fi
  rm -f "$pidfile"
}

port_listening() {
  local port="$1"
  [[ -n "$(ss -ltnH "sport = :$port" 2>/dev/null)" ]]
}

# wait_for STEP LOGFILE CMD...: poll CMD every 0.2 s until it succeeds or HEALTH_TIMEOUT.
wait_for() {
  local step="$1" logfile="$2" deadline
  shift 2
  deadline=$((SECONDS + HEALTH_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "step '$step' failed: no success from '$*' within ${HEALTH_TIMEOUT}s"
      if [[ -f "$logfile" ]]; then
        log "last lines of $logfile:"
        tail -n 15 "$logfile" >&2 || true
      fi
      die "step '$step' failed; read $logfile"
    fi
    sleep 0.2
  done
}

node_state() {
  sinfo --noheader --nodes="$NODE_NAME" --format='%T' 2>/dev/null | head -n 1
}

node_idle() { [[ "$(node_state)" == "idle" ]]; }

# Any state in which the node accepts jobs (tests may have jobs running).
node_usable() {
  case "$(node_state)" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
  esac
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
mariadb_ok() { [[ -S "$MYSQL_SOCKET" ]] && mariadb-admin --socket="$MYSQL_SOCKET" ping >/dev/null 2>&1; }
slurmdbd_ok() { port_listening "$SLURMDBD_PORT" && sacctmgr --noheader --parsable2 list cluster format=cluster >/dev/null 2>&1; }
slurmctld_ok() { port_listening "$SLURMCTLD_PORT" && scontrol ping 2>/dev/null | grep -q 'is UP'; }
cluster_registered() {
  sacctmgr --noheader --parsable2 list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"
}

# ---------------------------------------------------------------- start steps

prepare_dirs() {
  install -d -m 0755 -o root -g root "$LOG_DIR" "$STATE_DIR" "$RUN_DIR" "$SLURM_ETC"
  install -d -m 0700 -o root -g root "$STATE_DIR/preexisting"
  # slurmstepd runs as the job's user and must reach the batch script here: Slurm's own
  # default for SlurmdSpoolDir is 0755 (0700 makes every non-root job fail with execve EACCES).
  install -d -m 0755 -o root -g root "$STATE_DIR/slurmd"
  chmod 0755 "$STATE_DIR/slurmd"
  install -d -m 0700 -o slurm -g slurm "$STATE_DIR/slurmctld"
  install -d -m 0755 -o slurm -g slurm "$RUN_DIR/slurm"
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0700 -o munge -g munge /var/lib/munge
  install -d -m 0755 -o mysql -g mysql /run/mysqld
  touch "$LOG_DIR/slurmdbd.log" "$LOG_DIR/slurmctld.log" "$LOG_DIR/munged.log" "$LOG_DIR/mariadb.log"
  chown slurm:slurm "$LOG_DIR/slurmdbd.log" "$LOG_DIR/slurmctld.log"
  chown munge:munge "$LOG_DIR/munged.log"
  chown mysql:mysql "$LOG_DIR/mariadb.log"
  # Log files are readable by root only: slurmdbd's log names users and wckeys.
  chmod 0640 "$LOG_DIR/slurmdbd.log" "$LOG_DIR/slurmctld.log" "$LOG_DIR/munged.log" "$LOG_DIR/mariadb.log"
}

start_munge() {
  if [[ ! -s "$MUNGE_KEY" ]]; then
    log "generating $MUNGE_KEY"
    install -d -m 0700 -o munge -g munge /etc/munge
    (umask 077 && runuser -u munge -- mungekey --create --keyfile="$MUNGE_KEY")
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"
  if munge_ok; then
    return 0
  fi
  stop_daemon munged /run/munge/munged.pid
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged --log-file="$LOG_DIR/munged.log" --pid-file=/run/munge/munged.pid 9>&-
  wait_for "munged credential round trip" "$LOG_DIR/munged.log" munge_ok
}

start_mariadb() {
  if mariadb_ok; then
    return 0
  fi
  stop_daemon mariadbd /run/mysqld/mysqld.pid
  rm -f "$MYSQL_SOCKET"
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    log "initialising the MariaDB data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$LOG_DIR/mariadb-install.log" 2>&1 ||
      die "step 'mariadb-install-db' failed; read $LOG_DIR/mariadb-install.log"
  fi
  log "starting mariadbd"
  setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket="$MYSQL_SOCKET" \
    --pid-file=/run/mysqld/mysqld.pid --log-error="$LOG_DIR/mariadb.log" \
    </dev/null >/dev/null 2>&1 9>&- &
  wait_for "mariadb socket $MYSQL_SOCKET" "$LOG_DIR/mariadb.log" mariadb_ok
}

# The database and a 'slurm' account authenticated by the unix socket (no password).
ensure_accounting_db() {
  mariadb --socket="$MYSQL_SOCKET" --batch <<'SQL' >>"$LOG_DIR/mariadb-setup.log" 2>&1 ||
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
    die "step 'create slurm_acct_db and its user' failed; read $LOG_DIR/mariadb-setup.log"
}

write_configs() {
  slurmdbd_conf_text | install_file "$SLURM_ETC/slurmdbd.conf" slurm:slurm 0600
  slurm_conf_text | install_file "$SLURM_ETC/slurm.conf" root:root 0644
}

config_digest() {
  cat "$SLURM_ETC/slurm.conf" "$SLURM_ETC/slurmdbd.conf" | sha256sum | cut -d' ' -f1
}

slurm_daemons_running() {
  daemon_running slurmdbd "$RUN_DIR/slurm/slurmdbd.pid" &&
    daemon_running slurmctld "$RUN_DIR/slurm/slurmctld.pid" &&
    daemon_running slurmd "$RUN_DIR/slurmd.pid"
}

stop_slurm_daemons() {
  stop_daemon slurmd "$RUN_DIR/slurmd.pid"
  stop_daemon slurmctld "$RUN_DIR/slurm/slurmctld.pid"
  stop_daemon slurmdbd "$RUN_DIR/slurm/slurmdbd.pid"
  rm -f "$RUN_DIR/config.sha256"
}

start_slurmdbd() {
  if daemon_running slurmdbd "$RUN_DIR/slurm/slurmdbd.pid" && slurmdbd_ok; then
    return 0
  fi
  stop_daemon slurmdbd "$RUN_DIR/slurm/slurmdbd.pid"
  if port_listening "$SLURMDBD_PORT"; then
    die "port $SLURMDBD_PORT is held by a process that is not our slurmdbd; find it with 'ss -ltnp'"
  fi
  log "starting slurmdbd"
  runuser -u slurm -- /usr/sbin/slurmdbd 9>&-
  wait_for "slurmdbd on port $SLURMDBD_PORT" "$LOG_DIR/slurmdbd.log" slurmdbd_ok
}

ensure_cluster() {
  if ! cluster_registered; then
    log "registering cluster $CLUSTER_NAME in slurmdbd"
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
  fi
  wait_for "cluster $CLUSTER_NAME registered" "$LOG_DIR/slurmdbd.log" cluster_registered
}

start_slurmctld() {
  if daemon_running slurmctld "$RUN_DIR/slurm/slurmctld.pid" && slurmctld_ok; then
    return 0
  fi
  stop_daemon slurmctld "$RUN_DIR/slurm/slurmctld.pid"
  if port_listening "$SLURMCTLD_PORT"; then
    die "port $SLURMCTLD_PORT is held by a process that is not our slurmctld; find it with 'ss -ltnp'"
  fi
  log "starting slurmctld"
  /usr/sbin/slurmctld 9>&-
  wait_for "slurmctld on port $SLURMCTLD_PORT" "$LOG_DIR/slurmctld.log" slurmctld_ok
}

start_slurmd() {
  if ! daemon_running slurmd "$RUN_DIR/slurmd.pid"; then
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
    if port_listening "$SLURMD_PORT"; then
      die "port $SLURMD_PORT is held by a process that is not our slurmd; find it with 'ss -ltnp'"
    fi
    log "starting slurmd"
    /usr/sbin/slurmd 9>&-
  fi
  # A node left DOWN/DRAIN by an earlier crash stays so until resumed.
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) state
  until node_usable; do
    state="$(node_state)"
    case "$state" in
      down* | drain* | fail*)
        scontrol update NodeName="$NODE_NAME" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    if ((SECONDS >= deadline)); then
      log "last lines of $LOG_DIR/slurmd.log:"
      tail -n 15 "$LOG_DIR/slurmd.log" >&2 || true
      die "step 'sinfo shows $NODE_NAME idle' failed (state '${state:-none}'); read $LOG_DIR/slurmd.log and $LOG_DIR/slurmctld.log"
    fi
    sleep 0.2
  done
}

# Several test sessions may call `start` at the same moment; one at a time decides.
# Daemons are started with fd 9 closed so they never inherit (and keep) the lock.
take_lock() {
  install -d -m 0755 -o root -g root "$RUN_DIR"
  exec 9>"$RUN_DIR/host_slurm.lock"
  flock --wait 300 9 || die "another host_slurm.sh held $RUN_DIR/host_slurm.lock for 300 s"
}

cmd_start() {
  [[ "$(id -u)" == 0 ]] || die "must run as root (it manages /etc/slurm and system daemons)"
  local t0=$SECONDS
  take_lock
  prepare_dirs
  start_munge
  start_mariadb
  ensure_accounting_db
  write_configs
  local digest
  digest="$(config_digest)"
  if slurm_daemons_running && [[ "$(cat "$RUN_DIR/config.sha256" 2>/dev/null || true)" == "$digest" ]] &&
    slurmdbd_ok && slurmctld_ok && node_usable; then
    log "Slurm cluster $CLUSTER_NAME already running with this configuration"
  else
    # Configuration changed, or a daemon is missing/stale: restart in the order Slurm needs
    # (slurmdbd listening before slurmctld, then slurmd).
    if [[ "$(cat "$RUN_DIR/config.sha256" 2>/dev/null || true)" != "$digest" ]]; then
      stop_slurm_daemons
    fi
    start_slurmdbd
    ensure_cluster
    start_slurmctld
    start_slurmd
    printf '%s\n' "$digest" >"$RUN_DIR/config.sha256"
  fi
  "$SCRIPT_DIR/host_users.sh"
  log "ready in $((SECONDS - t0)) s: cluster $CLUSTER_NAME, node $NODE_NAME $(node_state), logs in $LOG_DIR"
}

cmd_stop() {
  [[ "$(id -u)" == 0 ]] || die "must run as root"
  take_lock
  stop_slurm_daemons
  stop_daemon mariadbd /run/mysqld/mysqld.pid
  stop_daemon munged /run/munge/munged.pid
  log "stopped"
}

cmd_status() {
  local ok=0
  report() {
    if "$2"; then printf '%-10s ok\n' "$1"; else
      printf '%-10s DOWN\n' "$1"
      ok=1
    fi
  }
  report munged munge_ok
  report mariadb mariadb_ok
  report slurmdbd slurmdbd_ok
  report slurmctld slurmctld_ok
  report slurmd node_usable
  printf 'node      %s\n' "$(node_state || true)"
  return "$ok"
}

# The queue belongs to the test suite: a run killed mid-way (a session ending) leaves its
# service jobs running, or slurmctld recovers them from its saved state, and they load the
# 2 cores the next run's jobs need.
queued_jobs() { squeue --noheader --all --format="${1:-%i}" | tr '\n' ' '; }

cmd_cancel_jobs() {
  [[ "$(id -u)" == 0 ]] || die "must run as root"
  local jobs i
  jobs="$(queued_jobs)"
  if [[ -n "${jobs// /}" ]]; then
    log "cancelling jobs left by an earlier run: $jobs"
    # shellcheck disable=SC2086  # one argument per job id
    scancel $jobs || true
  fi
  for ((i = 0; i < 60; i++)); do
    jobs="$(queued_jobs)"
    [[ -z "${jobs// /}" ]] && { log "queue empty"; return 0; }
    sleep 1
  done
  log "warning: jobs still listed after 60 s: $(queued_jobs '%i %T')"
}

cmd_env() {
  cat <<EOF
export SLURM_CONF=$SLURM_ETC/slurm.conf
export OOD_MT_SLURM_CLUSTER=$CLUSTER_NAME
export OOD_MT_SLURM_PARTITION=$PARTITION_NAME
export OOD_MT_SLURM_ACCOUNT=$LAB_ACCOUNT
export OOD_MT_SLURM_NODE=$NODE_NAME
export OOD_MT_LAB_LOG_DIR=$LOG_DIR
EOF
}

# The daemons this script starts outlive it: they must not keep descriptors the caller
# happened to hold (a pytest capture pipe, a `flock` lock), or those stay open for good.
close_inherited_fds() {
  local fd
  for fd in "/proc/$$/fd/"*; do
    fd=${fd##*/}
    if ((fd > 2)); then
      eval "exec ${fd}>&-" 2>/dev/null || true
    fi
  done
}

main() {
  case "${1:-}" in
    start)
      close_inherited_fds
      cmd_start
      ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    cancel-jobs) cmd_cancel_jobs ;;
    *)
      echo "usage: $0 start|stop|status|env|cancel-jobs" >&2
      exit 2
      ;;
  esac
}

main "$@"
