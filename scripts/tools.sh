# shellcheck shell=bash
# scripts/tools.sh — Python-based project tools in the git-ignored venv .tools/venv, installed only when missing.
#
#   source scripts/tools.sh && tools_install     # then cfn-lint, sam, ... are on PATH
#
# Pinned top-level packages are listed in TOOLS_REQUIREMENTS; scripts/tools-constraints.txt (a pip freeze of a
# working venv) pins everything they pull in, so CI does not drift. Changing the list installs what it adds
# on the next run; regenerate the constraints then. cargo-lambda and ziglang share this venv with aws-sam-cli
# (`sam build` finds zig only then).

POSTFLOW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_VENV="$POSTFLOW_ROOT/.tools/venv"
TOOLS_CONSTRAINTS="$POSTFLOW_ROOT/scripts/tools-constraints.txt"
TOOLS_REQUIREMENTS=(
    "cfn-lint==1.58.0"
    "cfn-lint-serverless==0.3.6"
    "aws-sam-cli==1.170.0"
    "pyotp==2.9.0"
    "phonenumbers==9.0.43"
    "sentry-sdk==2.75.0"
    "sentry-relay==0.10.1"
    "cargo-lambda==1.9.2"
    "ziglang==0.13.0"
    "schemathesis==4.32.5"
)
# Sentry's published Kafka topic schemas, in a venv of their own (their protobuf/grpc dependencies stay out of
# the tools venv); pinned by scripts/schemas-constraints.txt.
TOOLS_SCHEMAS_VENV="$POSTFLOW_ROOT/.tools/schemas-venv"
TOOLS_SCHEMAS_REQUIREMENTS=("sentry-kafka-schemas==3.0.2")
TOOLS_SCHEMAS_CONSTRAINTS="$POSTFLOW_ROOT/scripts/schemas-constraints.txt"
# Real Sentry SDK for Node, for the end-to-end ingestion tests.
TOOLS_NODE_DIR="$POSTFLOW_ROOT/.tools/node"
TOOLS_NODE_PACKAGES=("@sentry/node@11.12.0")

# SAM CLI: no telemetry. (It still checks PyPI for a newer version once a week; there is no switch for that.)
export SAM_CLI_TELEMETRY=0

_tools_log() { printf '[tools] %s\n' "$*" >&2; }

# Install what is missing (a no-op when the stamp matches), then put the venv first on PATH.
tools_install() {
    local stamp="$TOOLS_VENV/.installed" want lock rc=0
    want=$(printf '%s\n' "${TOOLS_REQUIREMENTS[@]}")
    mkdir -p "$(dirname "$TOOLS_VENV")"
    exec {lock}>"$(dirname "$TOOLS_VENV")/.install.lock"   # one installer at a time
    flock "$lock"
    _tools_install_locked "$stamp" "$want" || rc=1
    exec {lock}>&-
    ((rc == 0)) || return 1
    case ":$PATH:" in
        *":$TOOLS_VENV/bin:"*) ;;
        *) export PATH="$TOOLS_VENV/bin:$PATH" ;;
    esac
}

# sentry-kafka-schemas into .tools/schemas-venv (a no-op when the stamp matches).
tools_schemas_install() {
    local stamp="$TOOLS_SCHEMAS_VENV/.installed" want t0
    want=$(printf '%s\n' "${TOOLS_SCHEMAS_REQUIREMENTS[@]}")
    if [[ -f $stamp && "$(<"$stamp")" == "$want" && -x $TOOLS_SCHEMAS_VENV/bin/python ]]; then
        return 0
    fi
    t0=$(date +%s)
    _tools_log "installing ${TOOLS_SCHEMAS_REQUIREMENTS[*]} into ${TOOLS_SCHEMAS_VENV#"$POSTFLOW_ROOT"/}"
    rm -rf "$TOOLS_SCHEMAS_VENV"
    python3 -m venv "$TOOLS_SCHEMAS_VENV" || { _tools_log "ERROR: python3 -m venv failed"; return 1; }
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS_SCHEMAS_VENV/bin/pip" install -q --no-input \
        -c "$TOOLS_SCHEMAS_CONSTRAINTS" "${TOOLS_SCHEMAS_REQUIREMENTS[@]}" \
        || { _tools_log "ERROR: pip install failed"; return 1; }
    printf '%s\n' "$want" >"$stamp"
    _tools_log "schemas installed in $(($(date +%s) - t0))s"
}

# npm packages into .tools/node (a no-op when the stamp matches).
tools_node_install() {
    local stamp="$TOOLS_NODE_DIR/.installed" want t0
    want=$(printf '%s\n' "${TOOLS_NODE_PACKAGES[@]}")
    if [[ -f $stamp && "$(<"$stamp")" == "$want" ]]; then
        return 0
    fi
    t0=$(date +%s)
    mkdir -p "$TOOLS_NODE_DIR"
    _tools_log "installing ${TOOLS_NODE_PACKAGES[*]} into ${TOOLS_NODE_DIR#"$POSTFLOW_ROOT"/}"
    npm install --prefix "$TOOLS_NODE_DIR" --no-audit --no-fund --loglevel=error "${TOOLS_NODE_PACKAGES[@]}" >/dev/null \
        || { _tools_log "ERROR: npm install failed"; return 1; }
    printf '%s\n' "$want" >"$stamp"
    _tools_log "node packages installed in $(($(date +%s) - t0))s"
}

_tools_install_locked() {
    local stamp=$1 want=$2
    if ! [[ -f $stamp && "$(<"$stamp")" == "$want" && -x $TOOLS_VENV/bin/python ]]; then
        local t0 constraints=()
        t0=$(date +%s)
        [[ -f $TOOLS_CONSTRAINTS ]] && constraints=(-c "$TOOLS_CONSTRAINTS")
        _tools_log "installing ${TOOLS_REQUIREMENTS[*]} into ${TOOLS_VENV#"$POSTFLOW_ROOT"/}"
        if [[ ! -x $TOOLS_VENV/bin/python ]]; then
            rm -rf "$TOOLS_VENV"
            python3 -m venv "$TOOLS_VENV" || { _tools_log "ERROR: python3 -m venv failed"; return 1; }
        fi
        rm -f "$stamp"
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$TOOLS_VENV/bin/pip" install -q --no-input \
            "${constraints[@]}" "${TOOLS_REQUIREMENTS[@]}" \
            || { _tools_log "ERROR: pip install failed"; return 1; }
        printf '%s\n' "$want" >"$stamp"
        _tools_log "tools installed in $(($(date +%s) - t0))s ($(du -sh "$TOOLS_VENV" | cut -f1))"
    fi
}

# `sam build --cached` reuses a function's build while its CodeUri (functions/<fn>) hashes the same: a change in
# the workspace crates they all link (shared/, the root Cargo.toml/Cargo.lock) is not seen. Drop the cache when
# any of those is newer than a function's built bootstrap in BUILD_DIR (or one is missing).
sam_drop_stale_cache() {
    local build_dir=$1 stale="" fn f
    for fn in $(grep -oE '^  [A-Za-z]+Function:' template.yaml | tr -d ' :'); do
        f=$build_dir/$fn/bootstrap
        if [[ ! -e $f ]] || [[ -n $(find shared Cargo.toml Cargo.lock -newer "$f" -type f -print -quit 2>/dev/null) ]]; then
            stale+=" $fn"
        fi
    done
    if [[ -n $stale && -d .aws-sam/cache ]]; then
        printf '[sam] shared/ or Cargo.toml/Cargo.lock changed since the last build of%s: dropping the sam build cache\n' "$stale" >&2
        rm -rf .aws-sam/cache
    fi
}
