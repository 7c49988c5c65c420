#!/usr/bin/env bash
# A real single-node Slurm (slurmctld and slurmd from Debian's packages) in one
# directory, for the end-to-end tests and for trying `quern slurm submit` on one machine.
#
#   scripts/local-slurm.sh up DIR     start it; prints the SLURM_CONF to export
#   scripts/local-slurm.sh down DIR   stop the daemons it started in DIR
#
# Needs root (slurmd starts jobs as their users) and the packages slurmctld, slurmd and
# slurm-client (scripts/setup.sh installs them). Authentication is auth/none, enough on
# one trusted machine; QUERN_SLURM_AUTH=munge runs munged as real clusters do (every
# directory above its socket must then be searchable by all). What this machine needs:
# proctrack/linuxproc and task/none (the cgroup plugins hang in containers), the node
# line exactly as `slurmd -C` reports it (more RealMemory than that drains the node),
# the controller and the node at 127.0.0.1, and no batch scheduling delay.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 up|down DIR" >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
conf=$dir/slurm.conf

# A free TCP port pair (controller, node), so that clusters in different directories
# can run side by side: nothing listening on either in /proc/net/tcp{,6}.
free_ports() {
  local port hex
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 20000))
    hex=$(printf ':%04X ' "$port"); hex2=$(printf ':%04X ' "$((port + 1))")
    if ! cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" {print $2" "}' | grep -q -e "$hex" -e "$hex2"; then
      echo "$port"; return
    fi
  done
  echo "no free port pair found" >&2; exit 1
}

running() { [ -r "/proc/$1/stat" ] && ! grep -qs '^[^)]*) Z' "/proc/$1/stat"; }

launch() {  # launch NAME COMMAND...: in the background, its pid in DIR/NAME.pid
  local name=$1; shift
  "$@" </dev/null >"$dir/$name.out" 2>&1 &
  echo $! >"$dir/$name.pid"
}

up() {
  for tool in slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/setup.sh (apt-get install slurmctld slurmd slurm-client)" >&2; exit 3; }
  done
  [ -e "$dir/slurmctld.pid" ] && { echo "a cluster is already up in $dir; run down first" >&2; exit 1; }
  mkdir -p "$dir/state" "$dir/spool"
  local auth="AuthType=auth/none
CredType=cred/none"
  if [ "${QUERN_SLURM_AUTH:-none}" = munge ]; then
    mkdir -p "$dir/munge"; chmod 711 "$dir/munge"
    head -c 1024 /dev/urandom >"$dir/munge/key"; chmod 400 "$dir/munge/key"
    launch munged munged --foreground --socket="$dir/munge/socket" --key-file="$dir/munge/key" \
      --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed"
    for _ in $(seq 50); do [ -S "$dir/munge/socket" ] && break; sleep 0.1; done
    [ -S "$dir/munge/socket" ] || { echo "munged did not start:" >&2; cat "$dir/munged.out" >&2; down; exit 1; }
    auth="AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket"
  fi
  local port; port=$(free_ports)
  cat >"$conf" <<EOF
ClusterName=quern-local
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
$auth
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.daemon.pid
SlurmdPidFile=$dir/slurmd.daemon.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=batch_sched_delay=0
$(slurmd -C | head -1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  launch slurmctld slurmctld -D -c -f "$conf"
  launch slurmd slurmd -D -f "$conf"
  export SLURM_CONF=$conf
  local deadline=$((SECONDS + 20))
  until [ "$(timeout 3 sinfo -h -o %T 2>/dev/null)" = idle ]; do
    [ $SECONDS -lt $deadline ] || { echo "the node did not come up:" >&2; tail -n 20 "$dir"/*.log "$dir"/*.out >&2; down; exit 1; }
    sleep 0.1
  done
  echo "SLURM_CONF=$conf"
}

down() {
  [ -f "$conf" ] && SLURM_CONF=$conf timeout 10 scancel --full --user=root 2>/dev/null || true
  for name in slurmd slurmctld munged; do
    [ -f "$dir/$name.pid" ] || continue
    local pid; pid=$(cat "$dir/$name.pid")
    if running "$pid" && [ "$(cat "/proc/$pid/comm")" = "$name" ]; then
      kill "$pid"
      for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
      running "$pid" && kill -9 "$pid"
    fi
    rm -f "$dir/$name.pid"
  done
}

case $cmd in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
