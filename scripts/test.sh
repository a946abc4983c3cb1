#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine with Rust (rustup): installs what the
# suite needs and the machine lacks, then builds and runs everything. The README's test
# command, and the install and test steps of CI (.ci/run), which adds formatting,
# lints and fuzzing around it.
#
#   scripts/test.sh                 install what is missing, then run the suite
#   scripts/test.sh --install-only  install what is missing, run nothing
#   scripts/test.sh --no-install    run the suite only (what is needed is there)
#
# Installing needs root or sudo for apt-get; everything else stays in the user's
# rustup and in this clone (.ci/tools).
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
run=1
case "${1:-}" in
  "") ;;
  --install-only) run=0 ;;
  --no-install) install=0 ;;
  *) echo "usage: $0 [--install-only | --no-install]" >&2; exit 2 ;;
esac

if ((install)); then
  # Debian packages the test suite uses as real peers:
  #   dbus-daemon: a private D-Bus bus for the logind activity probe's test.
  #   mosquitto, mosquitto-clients: the MQTT tests start their own Mosquitto on free ports
  #   (never the system service) and publish with mosquitto_pub.
  #   gcc-mingw-w64-x86-64: the linker for the cross-built Windows agent;
  #   wixl, msitools: build its MSI and read it back in the MSI test.
  #   chromium, chromium-driver: the web page's browser test (tests/tests/web.rs) drives
  #   the real Chromium through chromedriver.
  #   prometheus: `promtool check metrics` on a live /metrics (tests/tests/metrics.rs).
  #   dpkg-dev (dpkg-shlibdeps for the packages' Depends), binutils (strip), systemd
  #   (systemd-analyze verify): the Debian package test (tests/tests/deb.rs).
  #   wine64, wine (its `wine` launcher): the Wine test (tests/tests/windows_wine.rs)
  #   installs the MSI into a Wine prefix and runs the Windows agent as a service there
  #   (mingw also builds that test's stub DLL).
  #   postgresql: the PostgreSQL store's tests (collector/src/store/testpg.rs) run initdb and
  #   postgres from /usr/lib/postgresql/*/bin on a free port in a temp dir, as the
  #   `postgres` user the package creates (never the system service).
  packages=(dbus-daemon mosquitto mosquitto-clients gcc-mingw-w64-x86-64 wixl msitools
    chromium chromium-driver prometheus dpkg-dev binutils systemd wine64 wine postgresql)
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup target list --installed 2>/dev/null | grep -q '^x86_64-pc-windows-gnu$' || rustup target add x86_64-pc-windows-gnu

  # cargo-deb for the package test (tests/tests/deb.rs), kept inside the clone.
  if [ ! -x .ci/tools/bin/cargo-deb ]; then
    cargo install cargo-deb --version 3.8.0 --locked --root .ci/tools
  fi
  # cargo-fuzz for the fuzz targets (fuzz/README.md), kept inside the clone too.
  if [ ! -x .ci/tools/bin/cargo-fuzz ]; then
    cargo install cargo-fuzz --version 0.13.2 --locked --root .ci/tools
  fi
fi

if ((run)); then
  export CARGO_DEB="$PWD/.ci/tools/bin/cargo-deb"
  # Incremental caches doubled target/ (16 GB against 7.8 GB for a clean suite build)
  # and buy nothing on a one-shot build; CI's disk ran out with them.
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
  # The end-to-end tests start the binaries, so they are built first; the Windows
  # agent is cross-built for the MSI and Wine tests.
  cargo build --workspace --bins
  cargo build -p veille-agent --target x86_64-pc-windows-gnu
  cargo test --workspace
fi
