#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing (tesseract and poppler
# for OCR, nats-server for the cluster tests, Node.js + npm, the interop suite's node_modules,
# Debian's chromium, its Python venv),
# then runs every Rust test in the workspace, which includes the real-client interop suites
# (tests/interop.rs).
#
#   scripts/test.sh              # from anywhere; works on a fresh Debian machine as root
#
# Fails loudly: any failing step stops the run with a non-zero exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
INTEROP="$ROOT/tests/interop"

say() { printf '\n==> %s\n' "$*" >&2; }
die() { printf '\nscripts/test.sh: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need to install $*, but apt-get is not available"
  if [[ "$APT_UPDATED" == 0 ]]; then
    say "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# --- OCR: tesseract with French and English, poppler, qpdf (tests/ocr.rs) ------------------------
ocr_packages=()
command -v tesseract >/dev/null 2>&1 || ocr_packages+=(tesseract-ocr)
for lang in fra eng; do
  if ! tesseract --list-langs 2>/dev/null | grep -qx "$lang"; then
    ocr_packages+=("tesseract-ocr-$lang")
  fi
done
command -v pdftoppm >/dev/null 2>&1 || ocr_packages+=(poppler-utils)
# qpdf only makes the tests' password-protected PDFs.
command -v qpdf >/dev/null 2>&1 || ocr_packages+=(qpdf)
if (( ${#ocr_packages[@]} > 0 )); then
  apt_install "${ocr_packages[@]}"
fi

# --- curl (the HTTP API tests), script(1) (the CLI's progress bars, in a pseudo-terminal),
# mounts, and nats-server (tests/cluster.rs starts its own on free loopback ports; Debian's 2.9) --
tool_packages=()
command -v curl >/dev/null 2>&1 || tool_packages+=(curl)
command -v script >/dev/null 2>&1 || tool_packages+=(bsdutils)
command -v nats-server >/dev/null 2>&1 || tool_packages+=(nats-server)
# The disk-fault tests (tests/disk_faults.rs) mount a tmpfs and an ext4 loop device in a mount
# namespace of their own: unshare and nsenter (util-linux), losetup and mount (mount), mkfs.ext4
# (e2fsprogs). They need root; without these they fail, saying why.
command -v unshare >/dev/null 2>&1 || tool_packages+=(util-linux)
command -v nsenter >/dev/null 2>&1 || tool_packages+=(util-linux)
command -v losetup >/dev/null 2>&1 || tool_packages+=(mount)
command -v mkfs.ext4 >/dev/null 2>&1 || tool_packages+=(e2fsprogs)
if (( ${#tool_packages[@]} > 0 )); then
  # One name once, though two tools may have asked for it.
  mapfile -t tool_packages < <(printf '%s\n' "${tool_packages[@]}" | sort -u)
  apt_install "${tool_packages[@]}"
fi

# --- Node.js and npm (the @stomp/stompjs suite) -------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
elif ! command -v npm >/dev/null 2>&1; then
  apt_install npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" -ge 18 ]] || die "Node.js >= 18 is needed for node --test, found $(node --version)"

# npm ci when node_modules is missing or older than the lockfile (npm keeps its own copy of the
# lockfile in node_modules/.package-lock.json: that is the stamp).
stamp_npm="$INTEROP/node_modules/.package-lock.json"
if [[ ! -f "$stamp_npm" || "$INTEROP/package-lock.json" -nt "$stamp_npm" ]]; then
  say "npm ci (tests/interop)"
  (cd "$INTEROP" && npm ci --no-audit --no-fund)
  touch "$stamp_npm"
fi

# --- Chromium (the browser test, tests/interop/stompjs/browser.test.mjs) ------------------------
# playwright-core drives Debian's chromium through its executable path: no browser download.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  apt_install chromium
fi

# --- Python venv (the stomp.py suite) ----------------------------------------------------------
if ! command -v python3 >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
venv="$INTEROP/.venv"
req="$INTEROP/requirements.txt"
stamp_py="$venv/.requirements.sha256"
req_hash="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || ! -f "$stamp_py" || "$(cat "$stamp_py")" != "$req_hash" ]]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian splits venv/ensurepip out of python3.
    apt_install python3-venv
  fi
  say "python venv + pip install -r tests/interop/requirements.txt"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$req_hash" >"$stamp_py"
fi

# --- The tests ---------------------------------------------------------------------------------
# --no-fail-fast: one failing test binary must not hide the results of the others; the run
# still fails if anything failed.
failed=()
# Benches are measurements, not tests (BENCHMARKS.md says how to run them): `--all-targets`
# would run them, so the targets are named; the benches are still compiled, to keep them
# building.
targets=(--lib --bins --tests --examples)
say "cargo test --workspace ${targets[*]}"
cargo test --workspace "${targets[@]}" --no-fail-fast || failed+=("cargo test --workspace ${targets[*]}")

say "cargo check --workspace --benches"
cargo check --workspace --benches || failed+=("cargo check --workspace --benches")

say "cargo test --workspace --doc"
cargo test --workspace --doc --no-fail-fast || failed+=("cargo test --workspace --doc")

# Licences, banned crates and sources (deny.toml), when cargo-deny is installed: it is a
# maintainer's tool, a long build to install, and its advisory check needs GitHub.
if command -v cargo-deny >/dev/null 2>&1; then
  # Every platform's crates must be in the local cache for `cargo metadata` (macOS's
  # security-framework, behind async-nats, is never built here): fetched first, then checked
  # offline.
  say "cargo fetch --locked; cargo deny --offline check licenses bans sources"
  cargo fetch --locked || failed+=("cargo fetch")
  # The inclusion graphs run to thousands of lines and push a failing test's output out of a
  # CI log's tail.
  cargo deny --offline check --hide-inclusion-graph licenses bans sources || failed+=("cargo deny")
else
  say "cargo-deny is not installed: licences and sources not checked (cargo install cargo-deny --locked)"
fi

if ((${#failed[@]})); then
  printf '\nscripts/test.sh: FAILED: %s\n' "${failed[@]}" >&2
  # A full disk fails every cargo step at once, with the cause far up the log.
  df -h "$ROOT" "${CARGO_TARGET_DIR:-$ROOT/target}" 2>/dev/null >&2 || true
  exit 1
fi
say "all tests passed"
