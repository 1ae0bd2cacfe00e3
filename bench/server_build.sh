# Sourced by the benchmarks that start charlm-server (models_rss.sh, bigreply.sh,
# rewrite_storm.sh): with ROOT and NAME set, builds charlm-server as Release into BUILD
# (default ROOT/build; build-bench instead when BUILD holds another build type, which would
# measure the wrong thing), checks that curl is there, and prints the line every result
# starts with: date, CPUs, commit and load average.
BUILD=${BUILD:-$ROOT/build}
if [ -f "$BUILD/CMakeCache.txt" ] &&
    ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD/CMakeCache.txt"; then
    BUILD=$ROOT/build-bench
fi
[ -f "$BUILD/CMakeCache.txt" ] ||
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target charlm-server >/dev/null
command -v curl >/dev/null || { echo "$NAME: curl is not installed" >&2; exit 1; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs;" \
    "charlm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
