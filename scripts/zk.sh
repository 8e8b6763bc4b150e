#!/usr/bin/env bash
# Private ZooKeeper servers for tests: a standalone server or a 3-node ensemble on
# 127.0.0.1, on free ports, in a throw-away directory. Never touches a ZooKeeper on 2181.
#
#   scripts/zk.sh install                      install the Debian `zookeeper` package if missing
#   scripts/zk.sh start [--nodes 1|3] [--dir DIR]
#                                              start; prints ZK_DIR=... and ZK_CONNECT=... on stdout
#                                              (use: eval "$(scripts/zk.sh start)")
#   scripts/zk.sh stop DIR [--keep]            SIGTERM all nodes, wait until gone, remove DIR
#   scripts/zk.sh status DIR                   one line per node: "N 127.0.0.1:PORT MODE" (MODE: standalone,
#                                              leader, follower, observer, not-serving or down)
#   scripts/zk.sh leader DIR [--wait SECS]     print the index N of the current leader (exit 1 if none)
#   scripts/zk.sh kill-node DIR N [N...]       SIGKILL the nodes and wait until they are gone
#   scripts/zk.sh start-node DIR N [N...]      start the nodes again and wait until they serve (nodes
#                                              of an ensemble with no quorum left must start together)
#   scripts/zk.sh env DIR                      print ZK_DIR=... and ZK_CONNECT=... again
#   scripts/zk.sh cli DIR COMMAND [ARG...]     run one command of ZooKeeper's own client, zkCli.sh,
#                                              against DIR's servers (anonymously: a stranger to mprpc);
#                                              exits with its status, 124 if it takes over ZK_CLI_TIMEOUT
#
# Everything a later call needs is kept in DIR: DIR/zk.nodes (node count), DIR/zk.connect,
# and per node DIR/nodeN/{zoo.cfg,port,pid,server.log,data/}.
#
# Environment: ZK_START_TIMEOUT (s, default 30), ZK_STOP_TIMEOUT (s, default 10),
# ZK_CLI_TIMEOUT (s, default 30), ZK_JAVA (default java), ZK_JVM_FLAGS (default below),
# ZK_CLI (default /usr/share/zookeeper/bin/zkCli.sh, from the same Debian package).
# Progress and errors go to stderr; stdout carries only the machine-readable lines.

set -euo pipefail

readonly ZK_JAR=/usr/share/java/zookeeper.jar
readonly SLF4J_JAR=/usr/share/java/slf4j-simple.jar
readonly MAIN_STANDALONE=org.apache.zookeeper.server.ZooKeeperServerMain
readonly MAIN_QUORUM=org.apache.zookeeper.server.quorum.QuorumPeerMain
readonly ZK_CLI=${ZK_CLI:-/usr/share/zookeeper/bin/zkCli.sh}
CLI_TIMEOUT=${ZK_CLI_TIMEOUT:-30}
START_TIMEOUT=${ZK_START_TIMEOUT:-30}
STOP_TIMEOUT=${ZK_STOP_TIMEOUT:-10}
JAVA=${ZK_JAVA:-java}
JVM_FLAGS=${ZK_JVM_FLAGS:--Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}

log() { printf 'zk: %s\n' "$*" >&2; }
die() { printf 'zk: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '4,19s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# Milliseconds since the epoch, in $NOW_MS (no subshell).
now_ms() {
    local t=${EPOCHREALTIME//[.,]/}
    NOW_MS=$((10#$t / 1000))
}

# ---------------------------------------------------------------------------- install

apt_lists_empty() {
    local f
    for f in /var/lib/apt/lists/*_Packages*; do
        [[ -e $f ]] && return 1
    done
    return 0
}

cmd_install() {
    [[ -f $ZK_JAR ]] && return 0
    if [[ $(id -u) -ne 0 ]]; then
        die "$ZK_JAR is missing; as root run: apt-get update && apt-get install -y --no-install-recommends zookeeper"
    fi
    export DEBIAN_FRONTEND=noninteractive
    local apt_install=(apt-get install -y -q --no-install-recommends zookeeper)
    log "installing the Debian zookeeper package"
    if apt_lists_empty; then
        apt-get update -q >&2 || die "apt-get update failed"
        "${apt_install[@]}" >&2 || die "apt-get install zookeeper failed"
    elif ! "${apt_install[@]}" >&2; then
        log "install failed; retrying after apt-get update"
        apt-get update -q >&2 || die "apt-get update failed"
        "${apt_install[@]}" >&2 || die "apt-get install zookeeper failed"
    fi
    [[ -f $ZK_JAR ]] || die "the zookeeper package is installed but $ZK_JAR is missing"
}

# ---------------------------------------------------------------------------- helpers

# Send a four-letter command to 127.0.0.1:PORT and print the answer. Fails if nothing listens.
four_letter() {
    local port=$1 cmd=$2
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf '%s' "$cmd" >&3
        line=
        while IFS= read -r -t 2 line <&3 || [[ -n $line ]]; do
            printf '%s\n' "$line"
            line=
        done
    ) 2>/dev/null
}

# The node's mode: standalone|leader|follower|observer, not-serving (answers otherwise or not
# at all), or down (nothing listens).
node_mode() {
    local port=$1 out mode
    if ! out=$(four_letter "$port" srvr); then
        echo down
        return
    fi
    mode=$(sed -n 's/^Mode: //p' <<<"$out")
    echo "${mode:-not-serving}"
}

# Is PID a live process (not a zombie)? kill -0 succeeds on a zombie; /proc/PID/stat does not lie.
proc_alive() {
    local pid=$1 st state
    { read -r st </proc/"$pid"/stat; } 2>/dev/null || return 1
    state=${st##*) }
    state=${state%% *}
    [[ $state != Z && $state != X && $state != x ]]
}

# Print the pid of node N of DIR if that process is alive and really is that node's java.
node_pid() {
    local dir=$1 n=$2 pid cmdline
    [[ -f $dir/node$n/pid ]] || return 1
    pid=$(<"$dir/node$n/pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    { cmdline=$(tr '\0' ' ' </proc/"$pid"/cmdline); } 2>/dev/null || return 1
    [[ $cmdline == *"$dir/node$n/zoo.cfg"* ]] || return 1
    echo "$pid"
}

node_port() { cat "$1/node$2/port"; }

node_count() {
    local dir=$1
    [[ -f $dir/zk.nodes ]] || die "$dir is not a directory made by zk.sh start (no zk.nodes)"
    cat "$dir/zk.nodes"
}

# Absolute path without requiring it to exist.
abs_dir() {
    case $1 in
        /*) printf '%s\n' "${1%/}" ;;
        *) printf '%s/%s\n' "$PWD" "${1%/}" ;;
    esac
}

check_dir_arg() {
    [[ -n ${1:-} ]] || usage
    [[ -d $1 ]] || die "no such directory: $1"
}

check_node_arg() {
    local dir=$1 n=${2:-} count
    count=$(node_count "$dir")
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > count)); then
        die "node must be 1..$count, got '${n}'"
    fi
}

# N free TCP ports on 127.0.0.1 (bound to port 0 all at once, so they are distinct).
free_ports() {
    local count=$1 py
    py=$(command -v python3 || true)
    [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3 # skip pyenv shims: faster
    if [[ -n $py ]]; then
        "$py" - "$count" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
        return
    fi
    # Fallback: random ports in 20000-29999 not listed in /proc/net/tcp{,6} (any state).
    local used ports=() p hex
    used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
    while ((${#ports[@]} < count)); do
        p=$((20000 + RANDOM % 10000))
        printf -v hex '%04X' "$p"
        grep -qx "$hex" <<<"$used" && continue
        [[ " ${ports[*]} " == *" $p "* ]] && continue
        ports+=("$p")
    done
    echo "${ports[*]}"
}

# Launch node N of DIR in the background (own session, detached from the terminal).
launch_node() {
    local dir=$1 n=$2 main nd pid
    nd=$dir/node$n
    main=$(<"$nd/main")
    local -a flags
    read -r -a flags <<<"$JVM_FLAGS"
    (
        cd "$nd"
        # Do not hand inherited descriptors (a caller's pipes) to a long-lived daemon.
        local fdpath fd
        for fdpath in /proc/"$BASHPID"/fd/*; do
            fd=${fdpath##*/}
            if ((fd > 2)); then
                { exec {fd}>&-; } 2>/dev/null || true
            fi
        done
        exec setsid nohup "$JAVA" "${flags[@]}" \
            -Dorg.slf4j.simpleLogger.showDateTime=true \
            -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
            -cp "$ZK_JAR:$SLF4J_JAR" "$main" "$nd/zoo.cfg" \
            </dev/null >>"$nd/server.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$nd/pid"
    # Until the forked subshell has exec'd, its command line is this script's, and node_pid
    # would not recognise it: wait (briefly) for the exec.
    local i cmdline
    for ((i = 0; i < 200; i++)); do
        proc_alive "$pid" || break
        { cmdline=$(tr '\0' ' ' </proc/"$pid"/cmdline); } 2>/dev/null || break
        [[ $cmdline == *"$nd/zoo.cfg"* ]] && break
        sleep 0.01
    done
}

# Wait until every node in the list answers srvr with a mode. On timeout or death print
# the log tails of the nodes that are not ready and return 1.
wait_ready() {
    local dir=$1 timeout_s=$2
    shift 2
    local -a pending=("$@") still=()
    local n port mode deadline start pid
    now_ms
    start=$NOW_MS
    deadline=$((NOW_MS + timeout_s * 1000))
    while ((${#pending[@]} > 0)); do
        still=()
        for n in "${pending[@]}"; do
            if ! node_pid "$dir" "$n" >/dev/null; then
                # On a loaded machine the forked shell may not have exec'd java yet: a live
                # process that is not java (yet) is still starting, not dead.
                pid=$(<"$dir/node$n/pid")
                if [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid"; then
                    still+=("$n")
                    continue
                fi
                log "node $n exited during start-up; last lines of $dir/node$n/server.log:"
                tail -n 30 "$dir/node$n/server.log" >&2 || true
                return 1
            fi
            port=$(node_port "$dir" "$n")
            mode=$(node_mode "$port")
            case $mode in
                standalone | leader | follower | observer) ;;
                *) still+=("$n") ;;
            esac
        done
        pending=("${still[@]+"${still[@]}"}")
        ((${#pending[@]} == 0)) && break
        now_ms
        if ((NOW_MS >= deadline)); then
            for n in "${pending[@]}"; do
                log "node $n not ready after ${timeout_s}s; last lines of $dir/node$n/server.log:"
                tail -n 30 "$dir/node$n/server.log" >&2 || true
            done
            return 1
        fi
        sleep 0.05
    done
    now_ms
    WAIT_READY_MS=$((NOW_MS - start))
}

# Send SIG to the given nodes and wait up to TIMEOUT s until each process is gone.
# Returns 1 if some are still alive after that.
signal_and_wait() {
    local dir=$1 sig=$2 timeout_s=$3
    shift 3
    local n pid deadline
    local -a pids=()
    for n in "$@"; do
        if pid=$(node_pid "$dir" "$n"); then
            kill "-$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    now_ms
    deadline=$((NOW_MS + timeout_s * 1000))
    while :; do
        local -a left=()
        for pid in "${pids[@]+"${pids[@]}"}"; do
            proc_alive "$pid" && left+=("$pid")
        done
        ((${#left[@]} == 0)) && return 0
        pids=("${left[@]}")
        now_ms
        ((NOW_MS >= deadline)) && return 1
        sleep 0.05
    done
}

stop_nodes() {
    local dir=$1
    shift
    ((${#@} == 0)) && return 0
    if ! signal_and_wait "$dir" TERM "$STOP_TIMEOUT" "$@"; then
        log "some nodes ignored SIGTERM for ${STOP_TIMEOUT}s; sending SIGKILL"
        signal_and_wait "$dir" KILL 5 "$@" || die "nodes of $dir still alive after SIGKILL"
    fi
}

print_env() {
    local dir=$1
    printf 'ZK_DIR=%s\nZK_CONNECT=%s\n' "$dir" "$(<"$dir/zk.connect")"
}

# ---------------------------------------------------------------------------- start

write_config() {
    local dir=$1 nodes=$2 ports_str=$3
    local -a ports
    read -r -a ports <<<"$ports_str"
    local n nd connect="" servers=""
    for ((n = 1; n <= nodes; n++)); do
        if ((nodes > 1)); then
            servers+="server.$n=127.0.0.1:${ports[3 * n - 2]}:${ports[3 * n - 1]}"$'\n'
        fi
        connect+="${connect:+,}127.0.0.1:${ports[3 * n - 3]}"
    done
    for ((n = 1; n <= nodes; n++)); do
        nd=$dir/node$n
        mkdir -p "$nd/data"
        rm -f "$nd/pid"
        echo "${ports[3 * n - 3]}" >"$nd/port"
        if ((nodes > 1)); then
            echo "$n" >"$nd/data/myid"
            echo "$MAIN_QUORUM" >"$nd/main"
        else
            echo "$MAIN_STANDALONE" >"$nd/main"
        fi
        cat >"$nd/zoo.cfg" <<EOF
tickTime=500
initLimit=10
syncLimit=5
dataDir=$nd/data
clientPort=${ports[3 * n - 3]}
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat,cons
forceSync=no
preAllocSize=4096
maxClientCnxns=0
minSessionTimeout=1000
maxSessionTimeout=30000
${servers}
EOF
    done
    echo "$nodes" >"$dir/zk.nodes"
    echo "$connect" >"$dir/zk.connect"
}

cmd_start() {
    local nodes=1 dir="" made_dir=0
    while (($#)); do
        case $1 in
            --nodes) nodes=${2:-}; shift 2 || usage ;;
            --nodes=*) nodes=${1#*=}; shift ;;
            --dir) dir=${2:-}; shift 2 || usage ;;
            --dir=*) dir=${1#*=}; shift ;;
            *) usage ;;
        esac
    done
    [[ $nodes == 1 || $nodes == 3 ]] || die "--nodes must be 1 or 3"

    [[ -f $ZK_JAR ]] || cmd_install
    [[ -f $SLF4J_JAR ]] || die "$SLF4J_JAR is missing (package libslf4j-java)"
    command -v "$JAVA" >/dev/null || die "no java on PATH (the zookeeper package pulls in default-jre)"

    if [[ -n $dir ]]; then
        dir=$(abs_dir "$dir")
        if [[ -f $dir/zk.nodes ]]; then
            local n
            for ((n = 1; n <= $(<"$dir/zk.nodes"); n++)); do
                node_pid "$dir" "$n" >/dev/null && die "$dir already has a running node $n; stop it first"
            done
        fi
        [[ -d $dir ]] || made_dir=1
        mkdir -p "$dir"
    else
        dir=$(mktemp -d "${TMPDIR:-/tmp}/zk.XXXXXX")
        made_dir=1
    fi

    local attempt all=() n ports
    for ((n = 1; n <= nodes; n++)); do all+=("$n"); done
    # A free port can be taken by someone else before java binds it: retry with new ports.
    for attempt in 1 2 3; do
        ports=$(free_ports $((nodes * 3)))
        write_config "$dir" "$nodes" "$ports"
        log "starting $nodes node(s) in $dir: $(<"$dir/zk.connect")"
        trap 'stop_nodes "$dir" "${all[@]}"; ((made_dir)) && rm -rf "$dir"; exit 130' INT TERM
        for n in "${all[@]}"; do
            launch_node "$dir" "$n"
        done
        if wait_ready "$dir" "$START_TIMEOUT" "${all[@]}"; then
            trap - INT TERM
            log "ready in ${WAIT_READY_MS} ms"
            print_env "$dir"
            return 0
        fi
        stop_nodes "$dir" "${all[@]}"
        trap - INT TERM
        if grep -qs 'Address already in use' "$dir"/node*/server.log && ((attempt < 3)); then
            log "port collision; retrying with other ports"
            rm -f "$dir"/node*/server.log
            continue
        fi
        break
    done
    if ((made_dir)); then
        rm -rf "$dir"
    fi
    die "ZooKeeper did not become ready"
}

# ---------------------------------------------------------------------------- other commands

cmd_stop() {
    local dir="" keep=0
    while (($#)); do
        case $1 in
            --keep) keep=1 ;;
            -*) usage ;;
            *) [[ -z $dir ]] || usage; dir=$1 ;;
        esac
        shift
    done
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    local count n all=()
    count=$(node_count "$dir")
    for ((n = 1; n <= count; n++)); do all+=("$n"); done
    stop_nodes "$dir" "${all[@]}"
    if ((!keep)); then
        rm -rf "$dir"
    fi
}

cmd_status() {
    local dir=${1:-}
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    local count n port mode
    count=$(node_count "$dir")
    for ((n = 1; n <= count; n++)); do
        port=$(node_port "$dir" "$n")
        if node_pid "$dir" "$n" >/dev/null; then
            mode=$(node_mode "$port")
        else
            mode=down
        fi
        echo "$n 127.0.0.1:$port $mode"
    done
}

cmd_leader() {
    local dir="" wait_s=0
    while (($#)); do
        case $1 in
            --wait) wait_s=${2:-}; shift 2 || usage ;;
            -*) usage ;;
            *) [[ -z $dir ]] || usage; dir=$1; shift ;;
        esac
    done
    [[ $wait_s =~ ^[0-9]+$ ]] || die "--wait needs whole seconds"
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    local count n deadline
    count=$(node_count "$dir")
    now_ms
    deadline=$((NOW_MS + wait_s * 1000))
    while :; do
        for ((n = 1; n <= count; n++)); do
            node_pid "$dir" "$n" >/dev/null || continue
            if [[ $(node_mode "$(node_port "$dir" "$n")") == leader ]]; then
                echo "$n"
                return 0
            fi
        done
        now_ms
        ((NOW_MS >= deadline)) && break
        sleep 0.05
    done
    log "no leader in $dir"
    return 1
}

cmd_kill_node() {
    local dir=${1:-} n
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    shift
    (($#)) || usage
    local -a running=()
    for n in "$@"; do
        check_node_arg "$dir" "$n"
        if node_pid "$dir" "$n" >/dev/null; then
            running+=("$n")
        else
            log "node $n is not running"
        fi
    done
    ((${#running[@]} == 0)) && return 0
    signal_and_wait "$dir" KILL 5 "${running[@]}" || die "node(s) ${running[*]} still alive after SIGKILL"
}

cmd_start_node() {
    local dir=${1:-} n
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    shift
    (($#)) || usage
    local -a stopped=()
    for n in "$@"; do
        check_node_arg "$dir" "$n"
        if node_pid "$dir" "$n" >/dev/null; then
            log "node $n is already running"
        else
            stopped+=("$n")
        fi
    done
    ((${#stopped[@]} == 0)) && return 0
    # All launched before waiting: a node of an ensemble serves only once a quorum is up.
    for n in "${stopped[@]}"; do
        launch_node "$dir" "$n"
    done
    if ! wait_ready "$dir" "$START_TIMEOUT" "${stopped[@]}"; then
        stop_nodes "$dir" "${stopped[@]}"
        die "node(s) ${stopped[*]} did not become ready"
    fi
    log "node(s) ${stopped[*]} ready in ${WAIT_READY_MS} ms"
}

cmd_env() {
    local dir=${1:-}
    check_dir_arg "$dir"
    dir=$(abs_dir "$dir")
    node_count "$dir" >/dev/null
    print_env "$dir"
}

cmd_cli() {
    local dir=${1:-}
    check_dir_arg "$dir"
    shift
    (($#)) || usage
    dir=$(abs_dir "$dir")
    [[ -f $ZK_JAR ]] || cmd_install
    [[ -x $ZK_CLI ]] || die "$ZK_CLI is missing (it comes with the Debian zookeeper package)"
    # One command on the command line: zkCli.sh runs it, prints its output and exits with
    # its status (1 for "Insufficient permission", for example).
    timeout "$CLI_TIMEOUT" "$ZK_CLI" -server "$(<"$dir/zk.connect")" "$@" </dev/null
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        install) cmd_install "$@" ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        leader) cmd_leader "$@" ;;
        kill-node) cmd_kill_node "$@" ;;
        start-node) cmd_start_node "$@" ;;
        env) cmd_env "$@" ;;
        cli) cmd_cli "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
