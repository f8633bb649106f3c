#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying and testing `atu sweep submit --slurm` (issue 19).
# Usage (as root): tools/slurm-local.sh start|stop|status
#   start   installs slurm-wlm and munge with apt-get when missing, writes /etc/slurm/slurm.conf for this host (its
#           CPUs and memory, as `slurmd -C` reports them), starts munged, slurmctld and slurmd, and waits until `sinfo`
#           shows the node idle. Exit 0 when the cluster is up (already up counts), 1 when it cannot be started.
#   stop    stops the three daemons by the PIDs in their PID files (nothing else is touched).
#   status  prints the daemons' PIDs and `sinfo`; exit 0 when the node is up.
# Files: state, logs and PID files under $SLURM_LOCAL_DIR (default /var/lib/atu-slurm-local).
set -euo pipefail
dir="${SLURM_LOCAL_DIR:-/var/lib/atu-slurm-local}"
conf=/etc/slurm/slurm.conf
marker="# written by atu tools/slurm-local.sh"
munge_pid="$dir/munged.pid" ctld_pid="$dir/slurmctld.pid" slurmd_pid="$dir/slurmd.pid"

say() { echo "slurm-local: $*" >&2; }
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null && return 0
  [ "$(id -u)" -eq 0 ] || { say "slurm-wlm/munge are not installed and installing them needs root"; return 1; }
  command -v apt-get >/dev/null || { say "slurm-wlm/munge are not installed and there is no apt-get"; return 1; }
  say "installing slurm-wlm and munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2
}

write_conf() {
  if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    say "$conf exists and was not written by this script; leaving it (and this cluster) alone"; return 1
  fi
  mkdir -p /etc/slurm "$dir/state" "$dir/spool"
  local host node
  host=$(hostname -s)
  # `slurmd -C` prints this host's line, e.g. "NodeName=h CPUs=2 Boards=1 SocketsPerBoard=1 ... RealMemory=23000";
  # a little memory is kept back for the daemons and the system.
  node=$(slurmd -C | head -1)
  local mem
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/; s/UpTime=.*//" <<<"$node")
  cat >"$conf" <<EOF
$marker (one node, this host)
ClusterName=atu-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
# No cgroups in a container: processes are tracked through /proc and tasks are not bound.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
# Quick turnaround on one node: little waiting between a job's end and the next scheduling pass.
SchedulerParameters=sched_min_interval=100000
KillWait=5
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  running "$munge_pid" && return 0
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  local user=root
  id munge >/dev/null 2>&1 && user=munge
  chown "$user" /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown "$user" /run/munge /var/log/munge /var/lib/munge
  local pidfile=/run/munge/munged.pid
  if [ "$user" = root ]; then munged --force; else runuser -u munge -- munged; fi
  for _ in $(seq 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
  cp "$pidfile" "$munge_pid"
}

start() {
  install_packages
  mkdir -p "$dir"
  write_conf
  start_munge
  running "$ctld_pid" || slurmctld
  running "$slurmd_pid" || slurmd
  for _ in $(seq 120); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qx 'idle\|mixed\|allocated'; then
      say "up: $(sinfo -h -N -o '%N %T %c CPUs %m MB')"; return 0
    fi
    # A node left down or drained by an earlier session comes back.
    sinfo -h -N -o '%T' 2>/dev/null | grep -q 'down\|drain' && scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
    sleep 0.5
  done
  say "the node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log"; sinfo >&2 || true
  return 1
}

stop() {
  local f
  for f in "$slurmd_pid" "$ctld_pid" "$munge_pid"; do
    if running "$f"; then
      local pid; pid=$(cat "$f")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$f"
  done
  say "stopped"
}

status() {
  local f ok=0
  for f in "$munge_pid" "$ctld_pid" "$slurmd_pid"; do
    if running "$f"; then echo "$(basename "$f" .pid): pid $(cat "$f")"; else echo "$(basename "$f" .pid): not running"; ok=1; fi
  done
  sinfo 2>/dev/null || ok=1
  return $ok
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
