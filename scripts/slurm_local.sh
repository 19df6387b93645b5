#!/usr/bin/env bash
# A one-node Slurm on localhost, for mkcell's `slurm` tests (Debian, as root).
#
#   scripts/slurm_local.sh up     (make slurm-up)
#       installs slurm-wlm, munge, slurmdbd and mariadb-server when missing; writes
#       /etc/slurm/slurm.conf (one node with this machine's CPUs and memory, one partition
#       `local`, JobRequeue=1) and slurmdbd.conf; starts munged, mariadbd, slurmdbd,
#       slurmctld and slurmd; waits until `sinfo` shows the node idle. Running it again
#       starts only what is not running.
#   scripts/slurm_local.sh down   (make slurm-down)
#       stops the daemons that `up` started (their pid files in /run/mkcell-slurm), no others.
#
# slurmdbd and MariaDB hold the accounting: without them `sacct` has nothing to show and
# Slurm cannot refuse an unknown account.
set -euo pipefail

RUN=/run/mkcell-slurm          # pid files of the daemons started here
STATE=/var/lib/mkcell-slurm    # slurmctld state, slurmd spool, MariaDB data
LOG=/var/log/mkcell-slurm
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
MARK="# written by mkcell scripts/slurm_local.sh"
DB_PORT=6820
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

say() { echo "slurm-local: $*"; }
die() {
    echo "slurm-local: error: $*" >&2
    exit 1
}

alive() { [[ -s $RUN/$1.pid ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

wait_for() { # SECONDS WHAT COMMAND...
    local limit=$1 what=$2
    local until=$((SECONDS + limit))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < until)) || die "$what did not come up within $limit s; see $LOG/"
        [[ ! -e $RUN/$what.pid ]] || alive "$what" || die "$what stopped; see $LOG/"
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmdbd >/dev/null || missing+=(slurmdbd)
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install ${PACKAGES[*]} by hand"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOG/apt.log" 2>&1 ||
        { apt-get update -qq >>"$LOG/apt.log" 2>&1 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG/apt.log" 2>&1; } ||
        die "apt-get install ${missing[*]} failed; see $LOG/apt.log"
}

write_config() {
    for f in "$CONF" "$DBD_CONF"; do
        if [[ -e $f ]] && ! grep -qF "$MARK" "$f"; then
            die "$f exists and was not written by this script (a real cluster?); move it away to use the local test cluster"
        fi
    done
    local node host
    node=$(slurmd -C | head -1) # NodeName=<host> CPUs=... RealMemory=... as slurmd sees them
    host=$(hostname -s)
    cat >"$CONF.tmp" <<EOF
$MARK
ClusterName=mkcell
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
EnforcePartLimits=ALL
# a requeued job waits cred_expire seconds before it may start again (Slurm's default: 120)
AuthInfo=cred_expire=20
KillWait=5
SchedulerParameters=sched_interval=5,bf_interval=5
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageEnforce=associations
JobAcctGatherType=jobacct_gather/linux
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DBD_CONF.tmp" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=mkcell-local
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DBD_CONF.tmp"
    for f in "$CONF" "$DBD_CONF"; do
        if cmp -s "$f.tmp" "$f"; then
            rm "$f.tmp"
        else
            alive slurmctld && die "$f would change while the cluster runs: run \`make slurm-down\` first"
            mv "$f.tmp" "$f"
        fi
    done
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged is already answering (ours or the system's)
    fi
    mkdir -p /run/munge
    chown munge:munge /run/munge
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$RUN/munged.pid"
    wait_for 20 munged sh -c 'munge -n | unmunge'
}

sql() { mariadb --socket="$RUN/mariadb/mysqld.sock" -u root "$@"; }

start_mariadb() {
    alive mariadbd && return 0
    if [[ ! -d $STATE/mysql/mysql ]]; then
        mariadb-install-db --user=mysql --datadir="$STATE/mysql" --skip-test-db \
            --auth-root-authentication-method=socket >"$LOG/mariadb-install.log" 2>&1 ||
            die "mariadb-install-db failed; see $LOG/mariadb-install.log"
    fi
    setsid mariadbd --user=mysql --datadir="$STATE/mysql" --socket="$RUN/mariadb/mysqld.sock" \
        --pid-file="$RUN/mariadb/mariadbd.pid" --port=$DB_PORT --bind-address=127.0.0.1 \
        --log-error="$LOG/mariadb/mariadbd.log" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/mariadbd.pid"
    wait_for 60 mariadbd sql -e 'SELECT 1'
    sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'mkcell-local';
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'mkcell-local';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurm() {
    if ! alive slurmdbd; then
        slurmdbd
        wait_for 60 slurmdbd sacctmgr -n show cluster
    fi
    if [[ -z $(sacctmgr -n -P show cluster mkcell format=cluster) ]]; then
        sacctmgr -i add cluster mkcell >/dev/null
    fi
    alive slurmctld || slurmctld
    wait_for 60 slurmctld scontrol ping
    alive slurmd || slurmd
}

node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; }

up() {
    [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts daemons)"
    local t0=$SECONDS
    mkdir -p "$RUN/mariadb" "$STATE/ctld" "$STATE/slurmd" "$STATE/mysql" "$LOG/mariadb"
    install_packages
    chown mysql:mysql "$RUN/mariadb" "$STATE/mysql" "$LOG/mariadb"
    write_config
    start_munge
    start_mariadb
    start_slurm
    wait_for 90 "the idle node" node_idle
    say "up in $((SECONDS - t0)) s: $(sinfo -h -N -o '%N %T cpus=%c mem=%mMB partition=%P')"
}

down() {
    local name pid
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        alive "$name" || { rm -f "$RUN/$name.pid"; continue; }
        pid=$(cat "$RUN/$name.pid")
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$RUN/$name.pid"
        say "stopped $name ($pid)"
    done
}

case "${1:-}" in
up) up ;;
down) down ;;
*) die "usage: scripts/slurm_local.sh up|down" ;;
esac
