#!/usr/bin/env bash
# Stand up (or tear down) a real single-node Slurm on localhost, to try the `slurm` profile on
# one machine and to run it in CI.
#
#   usage: slurm-local.sh up|down|status
#
# `up` installs Debian's slurm-wlm and munge when they are missing (needs root and apt), writes
# a slurm.conf into the state directory (and the same file at /etc/slurm/slurm.conf), starts
# munged (as user munge), slurmctld and slurmd in the background with their logs in the state
# directory, and waits until `sinfo` shows the node idle. `down` stops the daemons it started.
# Both are idempotent. `status` prints the daemons and `sinfo`; exit 0 when Slurm answers.
#
# Environment:
#   SLURM_LOCAL_DIR      state directory (default /var/tmp/fugaku-sim-slurm), absolute path
#   SLURM_LOCAL_CPUS     CPUs the node advertises (default 4; more than the machine has is fine)
#   SLURM_LOCAL_TIMEOUT  seconds to wait for the node to become idle (default 60)
#
# Why each setting (learned running Slurm on a single 2-core machine):
# - absolute paths everywhere, and a copy at /etc/slurm/slurm.conf: the Snakemake slurm jobstep
#   plugin drops SLURM_CONF before its inner `srun`, which then looks in /etc/slurm only;
# - proctrack/linuxproc and task/none: no cgroups needed (containers rarely allow them);
# - CPUs=4 with SlurmdParameters=config_overrides: 4-rank MPI jobs run on a 2-core machine;
# - MinJobAge=3600: without slurmdbd `sacct` cannot answer, so the slurm executor plugin must
#   poll with `squeue`, which only sees jobs that finished less than MinJobAge seconds ago.
set -euo pipefail

readonly PROG=slurm-local.sh
readonly STATE_DIR="${SLURM_LOCAL_DIR:-/var/tmp/fugaku-sim-slurm}"
readonly NODE_CPUS="${SLURM_LOCAL_CPUS:-4}"
readonly TIMEOUT_S="${SLURM_LOCAL_TIMEOUT:-60}"
readonly ETC_CONF=/etc/slurm/slurm.conf
readonly MARKER="# written by fugaku-sim workflows/scripts/slurm-local.sh"
readonly CONF="$STATE_DIR/slurm.conf"

usage() { echo "usage: $PROG up|down|status" >&2; }
die() { echo "$PROG: error: $1" >&2; exit "${2:-1}"; }

check_input() {
  [[ "$STATE_DIR" == /* ]] || die "SLURM_LOCAL_DIR must be an absolute path, got '$STATE_DIR'" 2
  [[ "$NODE_CPUS" =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_CPUS must be a positive integer, got '$NODE_CPUS'" 2
  [[ "$TIMEOUT_S" =~ ^[1-9][0-9]*$ ]] || die "SLURM_LOCAL_TIMEOUT must be a positive integer, got '$TIMEOUT_S'" 2
}

# --- installation ---------------------------------------------------------------------------

install_packages() {
  local missing=0 tool
  for tool in sinfo slurmctld slurmd munged; do
    command -v "$tool" >/dev/null 2>&1 || missing=1
  done
  [[ $missing == 0 ]] && return 0
  [[ $(id -u) == 0 ]] || die "slurm-wlm/munge are missing and installing them needs root"
  command -v apt-get >/dev/null 2>&1 || die "slurm-wlm/munge are missing and apt-get is not available"
  echo "$PROG: installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends slurm-wlm munge >"$STATE_DIR/apt.log" 2>&1; then
    apt-get update >>"$STATE_DIR/apt.log" 2>&1 || true
    apt-get install -y --no-install-recommends slurm-wlm munge >>"$STATE_DIR/apt.log" 2>&1 \
      || die "apt-get install slurm-wlm munge failed, see $STATE_DIR/apt.log"
  fi
}

# --- configuration --------------------------------------------------------------------------

node_memory_mb() {
  # Advertise 90% of the machine's memory, so that Snakemake's mem_mb requests fit.
  awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo
}

write_conf() {
  local host mem
  host=$(hostname -s)
  mem=$(node_memory_mb)
  mkdir -p "$STATE_DIR/ctld" "$STATE_DIR/slurmd" "$STATE_DIR/log"
  cat >"$CONF" <<EOF
$MARKER
ClusterName=fugakusim
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=3600
SchedulerParameters=sched_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mkdir -p /etc/slurm
  if [[ -e $ETC_CONF ]] && ! grep -qF "$MARKER" "$ETC_CONF"; then
    die "$ETC_CONF exists and was not written by this script; move it away first" 2
  fi
  cp "$CONF" "$ETC_CONF"
}

ensure_munge_key() {
  [[ -s /etc/munge/munge.key ]] && return 0
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
}

# --- daemons --------------------------------------------------------------------------------

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_munged() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return 0  # a munged is already answering (ours or the system's): reuse it
  fi
  ensure_munge_key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  setpriv --reuid=munge --regid=munge --init-groups \
    /usr/sbin/munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$STATE_DIR/munged.pid"  # marks it as started by us
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "munged did not answer; see /var/log/munge/munged.log"
}

start_daemon() {  # name
  local name=$1
  pid_alive "$STATE_DIR/$name.run.pid" && return 0
  setsid nohup "/usr/sbin/$name" -D -f "$CONF" >"$STATE_DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$STATE_DIR/$name.run.pid"
}

wait_idle() {
  local deadline=$((SECONDS + TIMEOUT_S)) state=""
  while ((SECONDS < deadline)); do
    state=$(SLURM_CONF=$CONF sinfo -h -o %t 2>/dev/null | head -n1 || true)
    case $state in
      idle | mix | alloc) return 0 ;;
      drain* | down*) SLURM_CONF=$CONF scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  die "the node did not become idle within ${TIMEOUT_S}s (state '${state:-no answer}'); see $STATE_DIR/log/"
}

stop_pidfile() {  # pidfile name
  local file=$1 name=$2 pid
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$file"; return 0; }
    sleep 0.1
  done
  echo "$PROG: $name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL" >&2
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

# --- verbs ----------------------------------------------------------------------------------

cmd_up() {
  local t0=$SECONDS
  mkdir -p "$STATE_DIR/log"
  install_packages
  if pid_alive "$STATE_DIR/slurmctld.run.pid" && pid_alive "$STATE_DIR/slurmd.run.pid" \
    && SLURM_CONF=$CONF sinfo -h >/dev/null 2>&1; then
    echo "$PROG: already up (state dir $STATE_DIR)"
    return 0
  fi
  write_conf
  start_munged
  start_daemon slurmctld
  start_daemon slurmd
  wait_idle
  echo "$PROG: up in $((SECONDS - t0)) s; config $CONF (also $ETC_CONF), logs $STATE_DIR/log"
}

cmd_down() {
  stop_pidfile "$STATE_DIR/slurmd.run.pid" slurmd
  stop_pidfile "$STATE_DIR/slurmctld.run.pid" slurmctld
  if [[ -s $STATE_DIR/munged.pid ]]; then
    stop_pidfile "$STATE_DIR/munged.pid" munged
  fi
  echo "$PROG: down"
}

cmd_status() {
  local name rc=0
  for name in slurmctld slurmd; do
    if pid_alive "$STATE_DIR/$name.run.pid"; then
      echo "$name: running (pid $(cat "$STATE_DIR/$name.run.pid"))"
    else
      echo "$name: not running"
    fi
  done
  if [[ -r $CONF ]] && SLURM_CONF=$CONF sinfo 2>/dev/null; then
    return 0
  fi
  echo "sinfo: no answer"
  rc=1
  return $rc
}

main() {
  [[ $# == 1 ]] || { usage; exit 2; }
  check_input
  case $1 in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help) usage; echo "see the header of $0 for details" >&2 ;;
    *) usage; die "unknown verb '$1' (expected up, down or status)" 2 ;;
  esac
}

main "$@"
