#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes, with libFuzzer (Debian's clang) under
# AddressSanitizer + UBSan:
#
#   fuzz_api           POST /generate, /v1/completions, chat bodies server/api.c, jsonscan.c,
#                      and their error replies (UTF-8 JSON)        chat.c, http.c
#   fuzz_static_path   URL unescape + the static file name check,  server/http.c, static.c
#                      an error reply quoting the path (UTF-8 JSON)
#   fuzz_safetensors   model.safetensors, then the whole model load core/safetensors.c, artefacts.c
#   fuzz_vocab         vocab.json                                  core/vocab.c
#   fuzz_utf8          decode / find_invalid / count / encode agree, core/utf8.c
#                      cut / sanitize / escape give valid UTF-8
#   fuzz_tunereq       POST /v1/fine_tuning/jobs bodies            server/tunereq.c
#   fuzz_multipart     POST /v1/files: Content-Type + multipart body, server/multipart.c,
#                      then the content check of each part            filestore.c
#
#   tests/fuzz/run.sh [SECONDS]     SECONDS per target, default 30
#
# Builds every target into build-fuzz/ (or $CHARLM_FUZZ_BUILD; the sources compiled with the same flags; the gcc
# build is untouched), replays tests/fuzz/regressions/<target>/ (inputs that once failed),
# then runs each target for SECONDS from a copy of tests/fuzz/corpus/<target>/, so runs
# never write into the repository. A target's invariants trap on violation; any sanitizer
# report, trap, timeout (5 s) or excess memory is a finding: the crash file's path is
# printed and the script exits 1. To keep a finding as a regression case once fixed, copy
# its file into tests/fuzz/regressions/<target>/. Needs clang and libclang-rt-14-dev
# (scripts/install-deps.sh test).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
[[ $secs =~ ^[1-9][0-9]*$ ]] || { echo "usage: tests/fuzz/run.sh [SECONDS]" >&2; exit 2; }
targets=(fuzz_api fuzz_static_path fuzz_safetensors fuzz_vocab fuzz_utf8 fuzz_multipart fuzz_tunereq)
out=${CHARLM_FUZZ_BUILD:-build-fuzz}
# Objects are rebuilt every time (about 20 s): no stale file survives a source's removal.
rm -rf "$out/obj"
mkdir -p "$out/obj"

cc=clang
cflags=(-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -Wall -Wextra -Werror
        -fsanitize=address,undefined -fno-sanitize-recover=all -Icore -Iserver
        $(pkg-config --cflags openblas libcjson gnutls libmicrohttpd))
libs=($(pkg-config --libs openblas libcjson gnutls libmicrohttpd) -lpthread -lm)

echo "== fuzz: building into $out"
srcs=(core/*.c $(ls server/*.c | grep -v '^server/main\.c$'))
printf '%s\n' "${srcs[@]}" | xargs -P"$(nproc)" -I{} sh -c \
    'o='"$out"'/obj/$(echo {} | tr / _).o; '"$cc ${cflags[*]}"' -fsanitize=fuzzer-no-link -c {} -o "$o"'
rm -f "$out/libcharlm-fuzz.a"
ar rcs "$out/libcharlm-fuzz.a" "$out"/obj/*.o
for t in "${targets[@]}"; do
    "$cc" "${cflags[@]}" -fsanitize=fuzzer "tests/fuzz/$t.c" "$out/libcharlm-fuzz.a" "${libs[@]}" \
        -o "$out/$t"
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
opts=(-rss_limit_mb=2048 -timeout=5)
fail=0
for t in "${targets[@]}"; do
    reg=tests/fuzz/regressions/$t
    if [ -d "$reg" ] && [ -n "$(ls -A "$reg")" ]; then
        if ! "$out/$t" "${opts[@]}" "$reg"/* >"$out/$t.replay.log" 2>&1; then
            echo "FAIL $t: a regression input fails again (log: $out/$t.replay.log)"
            tail -n 30 "$out/$t.replay.log"
            fail=1
            continue
        fi
        echo "ok   $t: $(ls "$reg" | wc -l) regression inputs replayed"
    fi
done

for t in "${targets[@]}"; do
    work=$(mktemp -d "${TMPDIR:-/tmp}/charlm-fuzz-$t.XXXXXX")
    mkdir -p "$work/corpus" "$out/crashes"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    log=$out/$t.log
    # New inputs go into the first directory (the temporary copy), never the repository's.
    cp -r "tests/fuzz/corpus/$t/." "$work/corpus/"
    set +e
    "$out/$t" "${opts[@]}" "${dict[@]}" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$out/crashes/$t-" "$work/corpus" >"$log" 2>&1
    rc=$?
    set -e
    rm -rf "$work"
    stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
        grep -oE 'cov: [0-9]+|ft: [0-9]+|corp: [0-9]+' | paste -sd' ' || true)
    execs=$(grep -oE 'stat::number_of_executed_units: +[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    rate=$(grep -oE 'stat::average_exec_per_sec: +[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    if [ "$rc" -ne 0 ]; then
        crash=$(grep -oE "Test unit written to .*" "$log" | sed 's/Test unit written to //' | tail -n 1)
        echo "FAIL $t (exit $rc): input ${crash:-not written} (log: $log)"
        grep -E 'ERROR|SUMMARY|runtime error|deadly signal|out-of-memory|timeout' "$log" | head -n 8
        fail=1
    else
        printf 'ok   %-17s %4ss  %9s execs  %6s exec/s  %s\n' "$t" "$secs" "${execs:-?}" \
            "${rate:-?}" "$stats"
    fi
done
exit $fail
