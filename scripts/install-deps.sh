#!/usr/bin/env bash
# Installs the Debian bookworm packages charlm needs, only those missing.
#   scripts/install-deps.sh build   compile and run the server
#   scripts/install-deps.sh test    also the test tools: check, libcurl, promtool, chromium, node
set -euo pipefail
what=${1:-build}
pkgs=(cmake gcc make pkg-config libopenblas-dev libmicrohttpd-dev libcjson-dev libgnutls28-dev)
if [ "$what" = test ]; then
  pkgs+=(check libcurl4-openssl-dev prometheus chromium)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
