#!/usr/bin/env bash
# The Debian bookworm packages charlm needs: the one list, read by run.sh, test.sh, .ci/run
# and the Dockerfile. Installs only those missing (as root, or through sudo).
#
#   scripts/install-deps.sh build     compile the programs                        (run.sh)
#   scripts/install-deps.sh ctest     build + the C test suites' libraries, and wrk
#                                     (load for the model reload suite)            (Docker build stage)
#   scripts/install-deps.sh test      ctest + promtool, chromium, certificates for
#                                     npm, node and npm when node is missing, clang
#                                     and its libFuzzer runtime (tests/fuzz)        (test.sh, CI)
#   scripts/install-deps.sh runtime   only the shared libraries the programs load  (Docker runtime stage)
#   scripts/install-deps.sh bench     build + PyTorch, Flask, wrk, nginx, curl     (bench/, tests/reference/)
#
# The browser and OpenAI-client tests run on bookworm's own nodejs (18.19) and npm, or any
# node from 18.15 on that the machine already has.
set -euo pipefail

build=(cmake make gcc libc6-dev pkg-config libopenblas-dev libmicrohttpd-dev libcjson-dev
       libgnutls28-dev libedit-dev)
ctest=("${build[@]}" check libcurl4-openssl-dev wrk)
case "${1:-build}" in
build) pkgs=("${build[@]}") ;;
ctest) pkgs=("${ctest[@]}") ;;
test)
    # clang 14's -fsanitize=fuzzer lives in libclang-rt-14-dev, only recommended by clang.
    pkgs=("${ctest[@]}" prometheus chromium ca-certificates clang libclang-rt-14-dev)
    command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
    command -v npm >/dev/null 2>&1 || pkgs+=(npm)
    ;;
runtime) pkgs=(libopenblas0-pthread libmicrohttpd12 libcjson1 libgnutls30 libedit2) ;;
bench) pkgs=("${build[@]}" python3-torch python3-numpy python3-flask wrk nginx curl) ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac

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
