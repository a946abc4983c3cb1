#!/usr/bin/env bash
# Builds the Veille agent's Windows installer on Linux with wixl (Debian packages wixl,
# msitools; stripping uses binutils-mingw-w64-x86-64, pulled in by gcc-mingw-w64-x86-64).
#
#   deploy/windows/build-msi.sh <veille-agent.exe> [output.msi]
#
# The exe comes from `cargo build -p veille-agent --target x86_64-pc-windows-gnu`
# (add --release for a package you ship). Its debug info is stripped from the copy that
# goes into the MSI. The MSI's version is the workspace version ([workspace.package] in
# Cargo.toml, the one source of truth; VERSION=x.y.z overrides it), without any
# pre-release suffix, since Windows Installer versions are numeric (major.minor.build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exe="${1:?usage: build-msi.sh <veille-agent.exe> [output.msi]}"
out="${2:-veille-agent.msi}"
if [ ! -f "$exe" ]; then
  echo "build-msi.sh: $exe not found; build it with" >&2
  echo "  cargo build -p veille-agent --target x86_64-pc-windows-gnu" >&2
  exit 1
fi
for tool in wixl msibuild; do
  command -v "$tool" >/dev/null || { echo "build-msi.sh: $tool missing (apt-get install wixl msitools)" >&2; exit 1; }
done
version="${VERSION:-$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$here/../../Cargo.toml")}"
version="${version%%[-+]*}"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "build-msi.sh: cannot read a x.y.z version from Cargo.toml (got '$version')" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$exe" "$work/veille-agent.exe"
if command -v x86_64-w64-mingw32-strip >/dev/null; then
  x86_64-w64-mingw32-strip --strip-debug "$work/veille-agent.exe"
fi
# wixl resolves File/@Source against the working directory, not absolute paths.
(cd "$work" && wixl --arch x64 -D Version="$version" -D AgentExe=veille-agent.exe \
  -o veille-agent.msi "$here/veille-agent.wxs")
# wixl writes SecureCustomProperties itself (its upgrade properties) and has no way to
# add to it: append the installer's public properties so they reach the elevated part
# of an install started by a non-administrator too.
msibuild "$work/veille-agent.msi" -q "UPDATE Property SET Value = \
'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;COLLECTOR_URL;ORG;TOKEN;SITE;TAGS;CA_CERT' \
WHERE Property = 'SecureCustomProperties'"
mv "$work/veille-agent.msi" "$out"
echo "$out: Veille agent $version"
