#!/usr/bin/env bash
# Runs the Autobahn WebSocket test suite's fuzzing client (cases 1-7 and 9-10; 12-13 test
# permessage-deflate, which stompede does not offer) against examples/ws_echo.rs, stompede's
# WebSocket code serving echo, and writes the summary to docs/autobahn-summary.md.
#
#   scripts/autobahn.sh              # about 3 minutes once the suite is installed
#
# The suite needs Python 2.7 (pyenv's, or any python2.7 on PATH; AUTOBAHN_PYTHON to choose). It is
# installed once into a virtualenv outside the repository (AUTOBAHN_VENV, default
# ~/.cache/stompede/autobahn-venv) with the pins in scripts/autobahn/requirements.txt. The full
# HTML/JSON report goes to target/autobahn/reports. Not part of CI: it is slow and needs Python 2.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${AUTOBAHN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/stompede/autobahn-venv}"
port="${AUTOBAHN_PORT:-9001}"

if [[ ! -x "$venv/bin/wstest" ]]; then
    python="${AUTOBAHN_PYTHON:-}"
    if [[ -z "$python" ]]; then
        python="$(command -v python2.7 || true)"
        for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python; do
            [[ -z "$python" && -x "$candidate" ]] && python="$candidate"
        done
    fi
    if [[ -z "$python" ]]; then
        echo "autobahn.sh: no Python 2.7 found (set AUTOBAHN_PYTHON)" >&2
        exit 2
    fi
    tools="$(mktemp -d)"
    trap 'rm -rf "$tools"' EXIT
    # virtualenv's last release line for Python 2.7, kept out of that Python's own site-packages.
    "$python" -m pip install -q --target "$tools" 'virtualenv<20.22'
    PYTHONPATH="$tools" "$python" -m virtualenv -q -p "$python" "$venv"
    # incremental first: Twisted's setup needs an old one that still runs on Python 2.
    "$venv/bin/pip" install -q 'incremental==17.5.0' 'typing==3.10.0.0'
    "$venv/bin/pip" install -q -r scripts/autobahn/requirements.txt
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --example ws_echo
"$CARGO_TARGET_DIR/release/examples/ws_echo" "127.0.0.1:$port" &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

rm -rf target/autobahn/reports
mkdir -p target/autobahn
spec="target/autobahn/fuzzingclient.json"
sed "s/127.0.0.1:9001/127.0.0.1:$port/" scripts/autobahn/fuzzingclient.json > "$spec"
"$venv/bin/wstest" -m fuzzingclient -s "$spec"

python3 scripts/autobahn/summary.py target/autobahn/reports/index.json docs/autobahn-summary.md
