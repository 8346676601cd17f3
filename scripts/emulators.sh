# shellcheck shell=bash
# scripts/emulators.sh — local AWS emulators for Postflow's tests (no Docker needed).
#
#   DynamoDB        AWS DynamoDB Local (the jar shipped in the npm package amplify-dynamodb-simulator), Java 17,
#                   -inMemory -sharedDb, bound to 127.0.0.1 by tools/LoopbackDynamoDBLocal.java.
#   Kinesis + SNS   ministack (PyPI), SERVICES=kinesis,sns, BIND_HOST=127.0.0.1.
#
# Usage
#   In a bash script (this is what scripts/test does):
#       source scripts/emulators.sh
#       emulators_start          # install if missing, start both, wait until ready, export AWS_* variables
#       ...                      # the servers are stopped by PID when the shell exits (EXIT/INT/TERM trap)
#   From the command line:
#       scripts/with-emulators cargo test -p shared       # run one command with the emulators up
#       scripts/with-emulators                            # just keep them up (prints the exports) until Ctrl-C
#
# What emulators_start exports:
#   AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
#   AWS_EC2_METADATA_DISABLED=true POSTFLOW_EMULATORS=1
#   AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:<port>
#   AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:<port>   AWS_ENDPOINT_URL_SNS=<same port: one ministack serves both>
#
# Nested use (`scripts/with-emulators scripts/test`): when POSTFLOW_EMULATORS=1 and both endpoints answer,
# emulators_start reuses them instead of starting a second pair.
#
# Everything is installed into the git-ignored .local-aws/ folder, only when missing (pinned versions below;
# bumping a pin reinstalls). Java is apt-installed only if there is no `java` at all.
#
# Knobs (environment):
#   EMULATORS_TIMEOUT=60        seconds to wait for each server to answer
#   EMULATORS_DDB_PORT / EMULATORS_MINISTACK_PORT   fixed ports instead of free ones picked at random
#   EMULATORS_KEEP_LOGS=1       keep the run folder (server logs) even when everything passed
#
# The servers run in their own process group (setsid), so Ctrl-C in the terminal reaches this shell, whose trap
# stops them; emulators_stop kills exactly those process groups (TERM, then KILL after 10 s) and reaps them.
#
# Sourcing this file only defines functions and variables; it starts nothing. emulators_start installs an EXIT
# trap only if the shell has none yet; a caller with its own EXIT trap must call emulators_stop from it (it is
# idempotent). The INT/TERM traps stop the servers and `exit 130/143`, which runs that EXIT trap as well.

# ---- pins and paths ---------------------------------------------------------------------------------------------

POSTFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="$POSTFLOW_ROOT/.local-aws"

EMU_DDB_NPM_PACKAGE="amplify-dynamodb-simulator"
EMU_DDB_NPM_VERSION="2.9.30"          # ships DynamoDB Local 1.25.1 under package/emulator/
EMU_MINISTACK_VERSION="1.5.33"
# Full pip freeze of a working ministack venv: transitive dependencies do not drift under us.
EMU_MINISTACK_CONSTRAINTS="$POSTFLOW_ROOT/scripts/ministack-constraints.txt"

EMU_DDB_HOME="$EMU_DIR/dynamodb-local"        # DynamoDBLocal.jar + DynamoDBLocal_lib/
EMU_VENV="$EMU_DIR/venv"                      # ministack
EMU_LAUNCHER_SRC="$POSTFLOW_ROOT/tools/LoopbackDynamoDBLocal.java"
EMU_LAUNCHER_DIR="$EMU_DIR/launcher"          # compiled launcher class

# Runtime state of the current shell (empty when nothing runs).
_EMU_RUN_DIR=""
_EMU_DDB_PID=""
_EMU_MS_PID=""
_EMU_STARTED=""
_EMU_SPAWNED_PID=""

# ---- small helpers ----------------------------------------------------------------------------------------------

_emu_log() { printf '[emulators] %s\n' "$*" >&2; }
_emu_die() { printf '[emulators] ERROR: %s\n' "$*" >&2; return 1; }
_emu_now_ms() { date +%s%3N; }
# Milliseconds since $1 (an _emu_now_ms value) as seconds with one decimal.
_emu_since() { local d=$(( $(_emu_now_ms) - $1 )); printf '%d.%01ds' $((d / 1000)) $(((d % 1000) / 100)); }

# Run as root, or through sudo when we are not root.
_emu_as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else _emu_die "need root (or sudo) to run: $*"
    fi
}

# Print N distinct free TCP ports on 127.0.0.1 (the kernel picks them: bind to port 0, all sockets held open
# together so the ports differ). Tiny race until the server binds; emulators_start retries on a bind failure.
_emu_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# ---- installation -----------------------------------------------------------------------------------------------

_emu_install_prereqs() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    ((${#missing[@]} == 0)) && return 0
    _emu_log "apt-get install ${missing[*]} (not found on PATH)"
    _emu_as_root apt-get update -qq || { _emu_die "apt-get update failed"; return 1; }
    _emu_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { _emu_die "apt-get install ${missing[*]} failed"; return 1; }
}

# DynamoDB Local: `npm pack` downloads only the tarball (no dependency install), we keep package/emulator.
_emu_install_dynamodb_local() {
    local stamp="$EMU_DDB_HOME/.installed"
    local want="$EMU_DDB_NPM_PACKAGE@$EMU_DDB_NPM_VERSION"
    if [[ -f $stamp && "$(<"$stamp")" == "$want" && -f $EMU_DDB_HOME/DynamoDBLocal.jar ]]; then
        return 0
    fi
    command -v npm >/dev/null 2>&1 || _emu_die "npm is needed to fetch DynamoDB Local ($want)" || return 1
    _emu_log "installing DynamoDB Local from npm $want"
    local t0 tmp tgz
    t0=$(_emu_now_ms)
    tmp=$(mktemp -d "$EMU_DIR/tmp.npm.XXXXXX")
    tgz=$(cd "$tmp" && NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false npm pack --silent "$want" | tail -n 1) \
        || { rm -rf "$tmp"; _emu_die "npm pack $want failed"; return 1; }
    tar -xzf "$tmp/$tgz" -C "$tmp" package/emulator \
        || { rm -rf "$tmp"; _emu_die "unpacking $tgz failed"; return 1; }
    rm -rf "$EMU_DDB_HOME" "$EMU_LAUNCHER_DIR"
    mv "$tmp/package/emulator" "$EMU_DDB_HOME" || { rm -rf "$tmp"; _emu_die "mv failed"; return 1; }
    rm -rf "$tmp"
    printf '%s\n' "$want" >"$stamp"
    _emu_log "DynamoDB Local installed in $(_emu_since "$t0") ($(du -sh "$EMU_DDB_HOME" | cut -f1))"
}

# ministack in its own venv (python3 -m venv), pinned, with the constraints file when present.
_emu_install_ministack() {
    local stamp="$EMU_VENV/.installed"
    local want="ministack==$EMU_MINISTACK_VERSION"
    if [[ -f $stamp && "$(<"$stamp")" == "$want" && -x $EMU_VENV/bin/ministack ]]; then
        return 0
    fi
    _emu_log "installing $want into ${EMU_VENV#"$POSTFLOW_ROOT"/}"
    local t0 constraints=()
    t0=$(_emu_now_ms)
    [[ -f $EMU_MINISTACK_CONSTRAINTS ]] && constraints=(-c "$EMU_MINISTACK_CONSTRAINTS")
    rm -rf "$EMU_VENV"
    python3 -m venv "$EMU_VENV" || { _emu_die "python3 -m venv failed"; return 1; }
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$EMU_VENV/bin/pip" install -q --no-input "${constraints[@]}" "$want" \
        || { _emu_die "pip install $want failed"; return 1; }
    printf '%s\n' "$want" >"$stamp"
    _emu_log "ministack installed in $(_emu_since "$t0") ($(du -sh "$EMU_VENV" | cut -f1))"
}

# Compile the loopback launcher once (saves ~1 s per start compared with running the .java source).
# Without javac (a JRE-only machine) the launcher runs from source instead; see _emu_ddb_command.
_emu_compile_launcher() {
    local class="$EMU_LAUNCHER_DIR/LoopbackDynamoDBLocal.class"
    [[ -f $class && ! $EMU_LAUNCHER_SRC -nt $class ]] && return 0
    command -v javac >/dev/null 2>&1 || return 0
    mkdir -p "$EMU_LAUNCHER_DIR"
    javac -nowarn -d "$EMU_LAUNCHER_DIR" \
        -cp "$EMU_DDB_HOME/DynamoDBLocal.jar:$EMU_DDB_HOME/DynamoDBLocal_lib/*" "$EMU_LAUNCHER_SRC" \
        || { _emu_die "javac $EMU_LAUNCHER_SRC failed"; return 1; }
}

# Install whatever is missing. Safe to call every time (a no-op costs a few stat calls). An flock on
# .local-aws/.install.lock keeps two concurrent runs (two terminals, or a developer and a test) from
# installing over each other.
emulators_install() {
    mkdir -p "$EMU_DIR"
    local lock rc=0
    exec {lock}>"$EMU_DIR/.install.lock"
    flock "$lock"
    {
        _emu_install_prereqs && _emu_install_dynamodb_local && _emu_install_ministack && _emu_compile_launcher
    } || rc=1
    exec {lock}>&-
    return "$rc"
}

# ---- start / stop -----------------------------------------------------------------------------------------------

# Prints the java command line (one word per line) for DynamoDB Local on port $1.
_emu_ddb_command() {
    local cp="$EMU_DDB_HOME/DynamoDBLocal.jar:$EMU_DDB_HOME/DynamoDBLocal_lib/*"
    local main=LoopbackDynamoDBLocal
    if [[ -f $EMU_LAUNCHER_DIR/LoopbackDynamoDBLocal.class ]]; then
        cp="$EMU_LAUNCHER_DIR:$cp"
    else
        main="$EMU_LAUNCHER_SRC"     # Java 11+ single-file source launch
    fi
    printf '%s\n' java -Xmx512m -Djava.library.path="$EMU_DDB_HOME/DynamoDBLocal_lib" -cp "$cp" "$main" \
        -inMemory -sharedDb -disableTelemetry -port "$1"
}

# Start "$@" in the background in its own process group, stdout+stderr to log file $1, cwd $_EMU_RUN_DIR.
# Sets _EMU_SPAWNED_PID, which is also the process group id (checked in emulators_stop before a group kill).
# (Not called through $(...): the server must be a child of this shell so that `wait` can reap it.)
_emu_spawn() {
    local log=$1; shift
    if [[ $- == *m* ]]; then
        # Job control is on (interactive shell): `&` already makes the job its own process group.
        (cd "$_EMU_RUN_DIR" && exec "$@") >"$log" 2>&1 </dev/null &
    else
        # No job control: setsid execs in place (we are not a group leader), so $! stays the server's PID.
        (cd "$_EMU_RUN_DIR" && exec setsid "$@") >"$log" 2>&1 </dev/null &
    fi
    _EMU_SPAWNED_PID=$!
}

_emu_start_ddb() {
    local -a cmd
    mapfile -t cmd < <(_emu_ddb_command "$_EMU_DDB_PORT")
    _emu_spawn "$_EMU_RUN_DIR/dynamodb-local.log" "${cmd[@]}"
    _EMU_DDB_PID=$_EMU_SPAWNED_PID
}

_emu_start_ministack() {
    _emu_spawn "$_EMU_RUN_DIR/ministack.log" \
        env SERVICES=kinesis,sns BIND_HOST=127.0.0.1 GATEWAY_PORT="$_EMU_MS_PORT" "$EMU_VENV/bin/ministack"
    _EMU_MS_PID=$_EMU_SPAWNED_PID
}

_emu_ddb_ready() {   # any HTTP answer (DynamoDB Local answers GET / with 400) means ready
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$_EMU_DDB_PORT/"
}
_emu_ms_ready() {
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$_EMU_MS_PORT/_ministack/health"
}

_emu_alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# True if the log says the port was taken between picking it and binding it.
_emu_bind_failed() { grep -qiE 'already in use|BindException|errno 98' "$1" 2>/dev/null; }

_emu_print_failure() {   # $1 = name, $2 = log file, $3 = reason
    printf '[emulators] ERROR: %s %s. Last lines of %s:\n' "$1" "$3" "$2" >&2
    sed 's/^/    | /' < <(tail -n 40 "$2" 2>/dev/null) >&2 || true
}

# Reuse emulators already started by a parent process (e.g. `scripts/with-emulators scripts/test`).
_emu_reuse_running() {
    [[ ${POSTFLOW_EMULATORS:-} == 1 && -n ${AWS_ENDPOINT_URL_DYNAMODB:-} && -n ${AWS_ENDPOINT_URL_KINESIS:-} ]] \
        || return 1
    curl -s -o /dev/null --max-time 1 "$AWS_ENDPOINT_URL_DYNAMODB/" \
        && curl -sf -o /dev/null --max-time 1 "$AWS_ENDPOINT_URL_KINESIS/_ministack/health"
}

# Install if needed, start both servers, wait for both, export the AWS_* variables, arm the stop trap.
# On failure nothing is left running (the servers are stopped and their logs kept) and it returns 1.
emulators_start() {
    if [[ -n $_EMU_STARTED ]]; then _emu_log "already running"; return 0; fi
    if _emu_reuse_running; then
        _emu_log "reusing running emulators (DynamoDB $AWS_ENDPOINT_URL_DYNAMODB, ministack $AWS_ENDPOINT_URL_KINESIS)"
        return 0
    fi
    if ! _emu_start; then
        emulators_stop 1
        return 1
    fi
}

# The body of emulators_start: returns 1 on any failure (with the reason printed).
_emu_start() {
    local t_install
    t_install=$(_emu_now_ms)
    emulators_install || return 1
    _emu_log "install check done in $(_emu_since "$t_install")"

    # Arm the traps before anything is spawned, so that no failure path can leave a server behind.
    # An EXIT trap the caller already has is kept: it must call emulators_stop (scripts/test does).
    if [[ -z "$(trap -p EXIT)" ]]; then
        trap '_emu_on_exit' EXIT
    fi
    trap '_emu_on_signal INT 130' INT
    trap '_emu_on_signal TERM 143' TERM
    _EMU_STARTED=1
    _EMU_RUN_DIR=$(mktemp -d "$EMU_DIR/run.XXXXXX")

    local ports
    ports=$(_emu_free_ports 2) || { _emu_die "could not pick free ports (python3)"; return 1; }
    _EMU_DDB_PORT=${EMULATORS_DDB_PORT:-${ports% *}}
    _EMU_MS_PORT=${EMULATORS_MINISTACK_PORT:-${ports#* }}

    local timeout_ms=$(( ${EMULATORS_TIMEOUT:-60} * 1000 ))
    local t0 ddb_t0 ms_t0 ddb_ready="" ms_ready="" ddb_tries=1 ms_tries=1
    t0=$(_emu_now_ms)
    ddb_t0=$t0; ms_t0=$t0
    _emu_start_ddb
    _emu_start_ministack

    # Poll both every 100 ms. A server that dies is restarted on a new port if it lost a bind race (3 tries).
    while [[ -z $ddb_ready || -z $ms_ready ]]; do
        if [[ -z $ddb_ready ]]; then
            if _emu_alive "$_EMU_DDB_PID" && _emu_ddb_ready; then
                ddb_ready=$(_emu_since "$ddb_t0")
            elif ! _emu_alive "$_EMU_DDB_PID"; then
                local log="$_EMU_RUN_DIR/dynamodb-local.log"
                if _emu_bind_failed "$log" && ((ddb_tries < 3)) && [[ -z ${EMULATORS_DDB_PORT:-} ]]; then
                    wait "$_EMU_DDB_PID" 2>/dev/null || true
                    _EMU_DDB_PORT=$(_emu_free_ports 1); ddb_tries=$((ddb_tries + 1))
                    _emu_log "DynamoDB Local lost a port race; retrying on $_EMU_DDB_PORT"
                    ddb_t0=$(_emu_now_ms); _emu_start_ddb; continue
                fi
                _emu_print_failure "DynamoDB Local" "$log" "exited before answering on 127.0.0.1:$_EMU_DDB_PORT"
                return 1
            elif (($(_emu_now_ms) - ddb_t0 > timeout_ms)); then
                _emu_print_failure "DynamoDB Local" "$_EMU_RUN_DIR/dynamodb-local.log" \
                    "did not answer on 127.0.0.1:$_EMU_DDB_PORT within ${EMULATORS_TIMEOUT:-60}s"
                return 1
            fi
        fi
        if [[ -z $ms_ready ]]; then
            if _emu_alive "$_EMU_MS_PID" && _emu_ms_ready; then
                ms_ready=$(_emu_since "$ms_t0")
            elif ! _emu_alive "$_EMU_MS_PID"; then
                local log="$_EMU_RUN_DIR/ministack.log"
                if _emu_bind_failed "$log" && ((ms_tries < 3)) && [[ -z ${EMULATORS_MINISTACK_PORT:-} ]]; then
                    wait "$_EMU_MS_PID" 2>/dev/null || true
                    _EMU_MS_PORT=$(_emu_free_ports 1); ms_tries=$((ms_tries + 1))
                    _emu_log "ministack lost a port race; retrying on $_EMU_MS_PORT"
                    ms_t0=$(_emu_now_ms); _emu_start_ministack; continue
                fi
                _emu_print_failure "ministack" "$log" "exited before answering on 127.0.0.1:$_EMU_MS_PORT"
                return 1
            elif (($(_emu_now_ms) - ms_t0 > timeout_ms)); then
                _emu_print_failure "ministack" "$_EMU_RUN_DIR/ministack.log" \
                    "did not answer on 127.0.0.1:$_EMU_MS_PORT/_ministack/health within ${EMULATORS_TIMEOUT:-60}s"
                return 1
            fi
        fi
        [[ -n $ddb_ready && -n $ms_ready ]] || sleep 0.1
    done

    export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
    unset AWS_SESSION_TOKEN AWS_PROFILE
    export AWS_EC2_METADATA_DISABLED=true
    export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$_EMU_DDB_PORT"
    export AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$_EMU_MS_PORT"
    export AWS_ENDPOINT_URL_SNS="http://127.0.0.1:$_EMU_MS_PORT"
    export POSTFLOW_EMULATORS=1
    _emu_log "DynamoDB Local ready on $AWS_ENDPOINT_URL_DYNAMODB in $ddb_ready (pid $_EMU_DDB_PID)"
    _emu_log "ministack (kinesis,sns) ready on $AWS_ENDPOINT_URL_KINESIS in $ms_ready (pid $_EMU_MS_PID)"
}

# Stop one server: TERM its process group, wait up to 10 s, then KILL; reap it. $1 = name, $2 = pid.
_emu_kill_group() {
    local name=$1 pid=$2 pgid i
    [[ -n $pid ]] || return 0
    pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
    if [[ -z $pgid ]]; then           # already gone
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    # Group kill only if the server leads its own group (never signal our own group by accident).
    local target=("$pid")
    [[ $pgid == "$pid" ]] && target=(-- "-$pid")
    kill -TERM "${target[@]}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        _emu_log "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "${target[@]}" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # Children that outlived the leader (none expected) still carry the group id.
    if [[ $pgid == "$pid" ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
}

# Stop both servers (idempotent). $1 = exit status of the caller: logs are kept when it is non-zero.
emulators_stop() {
    local rc=${1:-0}
    [[ -n $_EMU_STARTED ]] || return 0
    _emu_kill_group "DynamoDB Local" "$_EMU_DDB_PID"
    _emu_kill_group "ministack" "$_EMU_MS_PID"
    _EMU_DDB_PID=""; _EMU_MS_PID=""; _EMU_STARTED=""
    if [[ -n $_EMU_RUN_DIR && -d $_EMU_RUN_DIR ]]; then
        if [[ $rc -ne 0 || ${EMULATORS_KEEP_LOGS:-} == 1 ]]; then
            _emu_log "emulators stopped; server logs kept in ${_EMU_RUN_DIR#"$POSTFLOW_ROOT"/}/"
        else
            rm -rf "$_EMU_RUN_DIR"
            _emu_log "emulators stopped"
        fi
    fi
    _EMU_RUN_DIR=""
}

_emu_on_exit() {
    local rc=$?
    emulators_stop "$rc"
    return "$rc"
}

_emu_on_signal() {   # $1 = signal name, $2 = exit status to use
    _emu_log "caught SIG$1; stopping emulators"
    trap - "$1"
    emulators_stop "$2"
    exit "$2"
}
