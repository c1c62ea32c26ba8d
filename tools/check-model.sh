#!/usr/bin/env bash
# Model-check the wake-up protocol (docs/model/wakeup.pml) with SPIN, and
# the models beside it (wait.pml, home.pml, dispatch.pml, pool.pml,
# win32-watcher.pml).
#
# Usage: tools/check-model.sh            (KEEP=1 keeps the work directory)
#
# The correct model must verify (safety: assertions and invalid end states;
# liveness: the LTL property under weak fairness), and every bug variant
# must produce a counterexample: a variant that verifies clean means the model
# no longer bites, and fails this script like a real error does.  Prints one
# line per check and "N passed, M failed"; exits non-zero on any unexpected
# result.  See docs/wakeup-protocol.md, "Model checking".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODEL="$ROOT/docs/model/wakeup.pml"
CHECK_TIMEOUT="${CHECK_TIMEOUT:-150}"   # seconds per pan run
# COLLAPSE: the -DEMBED checks store up to 40 M states; compressed they take
# 2.1 GB instead of 3.3 GB, for ~10 % more time.
PAN_CFLAGS=(-O2 -w -DMEMLIM=8192 -DNFAIR=3 -DCOLLAPSE)

if ! command -v spin >/dev/null 2>&1; then
    echo "check-model: spin not found, installing it (apt-get install spin)" >&2
    if ! { apt-get install -y spin >/dev/null 2>&1 ||
           { apt-get update >/dev/null 2>&1 && apt-get install -y spin >/dev/null 2>&1; }; }; then
        echo "check-model: could not install spin" >&2
        exit 2
    fi
fi
CC="${CC:-cc}"
if ! command -v "$CC" >/dev/null 2>&1; then
    echo "check-model: no C compiler ($CC) to build pan" >&2
    exit 2
fi
[ -f "$MODEL" ] || { echo "check-model: $MODEL missing" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/check-model.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then
    echo "check-model: work directory $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
fi

passed=0
failed=0

# check NAME EXPECT(verify|bite) "SPIN -D options" "extra pan cflags" "pan run options"
check() {
    local name=$1 expect=$2 spin_defs=$3 cflags=$4 runopts=$5
    local dir="$WORK/$name" t0 t1 secs errors states reason
    mkdir -p "$dir"
    # PML=<name> checks docs/model/<name>.pml instead (same work-file name).
    cp "$ROOT/docs/model/${PML:-wakeup}.pml" "$dir/wakeup.pml"
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086  # option lists are meant to split
    if ! (cd "$dir" && spin -a $spin_defs wakeup.pml >spin.log 2>&1 &&
          "$CC" "${PAN_CFLAGS[@]}" $cflags -o pan pan.c >cc.log 2>&1); then
        echo "model $name: FAILED to build (see below)"
        tail -n 20 "$dir/spin.log" "$dir/cc.log" 2>/dev/null | sed 's/^/    /'
        failed=$((failed + 1))
        return
    fi
    # shellcheck disable=SC2086
    (cd "$dir" && timeout "$CHECK_TIMEOUT" ./pan $runopts >pan.out 2>&1)
    local rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$dir/pan.out" | tail -n 1)
    states=$(awk '/states, stored/ { print $1; exit }' "$dir/pan.out")
    reason=$(sed -n 's/^pan:1: \(.*\) (at depth.*/\1/p' "$dir/pan.out" | head -n 1)
    local stats="${states:-?} states, ${secs} s"
    if [ $rc -eq 124 ] || [ -z "$errors" ]; then
        echo "model $name: UNEXPECTED: pan did not finish (rc $rc, $stats)"
        tail -n 15 "$dir/pan.out" | sed 's/^/    /'
        failed=$((failed + 1))
        return
    fi
    if [ "$expect" = verify ]; then
        if [ "$errors" = 0 ] && ! grep -q -e 'max search depth too small' \
                -e 'out of memory' -e 'aborted' "$dir/pan.out"; then
            echo "model $name: verified ($stats)"
            passed=$((passed + 1))
        else
            echo "model $name: UNEXPECTED: ${reason:-incomplete search} ($stats)"
            grep -e '^pan' -e 'errors:' "$dir/pan.out" | sed 's/^/    /'
            if [ -f "$dir/wakeup.pml.trail" ]; then
                # shellcheck disable=SC2086
                (cd "$dir" && spin -t -p $spin_defs wakeup.pml 2>&1 | tail -n 60 | sed 's/^/    /')
            fi
            failed=$((failed + 1))
        fi
    else
        if [ "$errors" -gt 0 ]; then
            echo "model $name: counterexample found (expected): $reason ($stats)"
            passed=$((passed + 1))
        else
            echo "model $name: UNEXPECTED: verified clean, the model does not bite ($stats)"
            failed=$((failed + 1))
        fi
    fi
}

SAFETY="-DSAFETY"
# Any search order is sound for finding a counterexample; exploring the
# highest process ids first finds BUG_TWO_BLOCKERS's in 0.1 s instead of
# minutes.  The correct model is explored exhaustively either way.
BUGORDER="-DSAFETY -DREVERSE"

check correct                verify ""                         "$SAFETY" ""
check correct-strict         verify "-DSTRICT"                 "$SAFETY" ""
check correct-ltl            verify "-DLTL"                    ""        "-a -f"
# The handler change as the producer's last work: what BUG_NOTIFY_SKIP_NO_FENCE
# needs to bite, verified with the fence.
check correct-hc-last        verify "-DHC_LAST"                "$SAFETY" ""

for bug in BUG_NONBLOCKING_ACCEPT BUG_NO_BARRIER \
           BUG_NO_BARRIER_POLL BUG_CLEAR_AFTER_REARM BUG_TWO_BLOCKERS \
           BUG_NB_NO_RIGHT BUG_TAKE_NOT_ATOMIC BUG_NOTIFY_SKIP_NO_FENCE \
           BUG_ANNOUNCE_AFTER_CHECK \
           BUG_BH_WAKE_LOAD_FIRST; do
    check "$bug"             bite   "-D$bug"                   "$BUGORDER" ""
done
# aio_notify's own Dekker half: since a BH no longer relies on it (it wakes
# only an announced sleeper, and N2 reads the stack), only the handler change
# does, and with a BH of the same producer after it that BH's wake-up
# rescues the sleep; so the handler change comes last here.
check BUG_NO_BARRIER_NOTIFY  bite   "-DHC_LAST -DBUG_NO_BARRIER_NOTIFY" "$BUGORDER" ""
# A BH scheduled onto an awake loop stores no notification, so a foreign
# non-blocking poll that runs it must pass the news on (-DPASS_ON adds the
# ghost 'unseen': the home thread's caller has not seen what that BH did).
check correct-pass-on        verify "-DPASS_ON"                "$SAFETY" ""
check BUG_NB_NO_PASS_ON      bite   "-DPASS_ON -DBUG_NB_NO_PASS_ON" "$BUGORDER" ""
# The epoll engine's edge-triggered kick (consumed by the wait that fetches
# it), and a non-blocking poll that could fetch it.
check et-correct             verify "-DET_KICK"                "$SAFETY" ""
check et-correct-strict      verify "-DET_KICK -DSTRICT"       "$SAFETY" ""
check et-BUG_NB_SEES_ET_KICK bite   "-DBUG_NB_SEES_ET_KICK"    "$BUGORDER" ""
for bug in BUG_NONBLOCKING_ACCEPT BUG_NO_BARRIER BUG_CLEAR_AFTER_REARM BUG_TWO_BLOCKERS; do
    check "$bug-ltl"         bite   "-DLTL -D$bug"             "-DREVERSE" "-a -f"
done

# The eventfd backends' two-place kick (src/posix/kick.h): a wait that
# watches nothing sleeps on a futex word, one that watches descriptors on the
# eventfd, each sleep choosing freely. One work item per producer keeps it to
# seconds (ROUNDS=2 verifies too, in 70 M states, 130 s and 3.4 GB).
FUTEX="-DFUTEX_KICK -DROUNDS=1"
check futex-correct          verify "$FUTEX"                   "$SAFETY" ""
check futex-correct-strict   verify "$FUTEX -DSTRICT"          "$SAFETY" ""
check futex-correct-pass-on  verify "$FUTEX -DPASS_ON"         "$SAFETY" ""
check futex-et-correct       verify "$FUTEX -DET_KICK"         "$SAFETY" ""
check futex-correct-ltl      verify "$FUTEX -DLTL"             ""        "-a -f"
for bug in BUG_KICK_NO_RECHECK BUG_KICK_LOOK_FIRST BUG_KICK_WORD_NO_MOVE BUG_CLEAR_AFTER_REARM; do
    check "futex-$bug"       bite   "$FUTEX -D$bug"            "$BUGORDER" ""
done
check futex-et-BUG_KICK_NO_RECHECK bite "$FUTEX -DET_KICK -DBUG_KICK_NO_RECHECK" "$BUGORDER" ""
check futex-BUG_KICK_NO_RECHECK-ltl bite "$FUTEX -DLTL -DBUG_KICK_NO_RECHECK" "-DREVERSE" "-a -f"

# The home thread as a host loop driving an embedded context (src/embed.c):
# prepare / host sleep / check / dispatch, nested blocking polls from host
# callbacks, the foreign non-blocking poll.
check embed-correct          verify "-DEMBED"                  "$SAFETY" ""
check embed-correct-strict   verify "-DEMBED -DSTRICT"         "$SAFETY" ""
check embed-et-correct       verify "-DEMBED -DET_KICK"        "$SAFETY" ""
# The pass-on with a host loop; one foreign poll keeps it to 19 M states.
check embed-correct-pass-on  verify "-DEMBED -DPASS_ON -DNB_POLLS=1" "$SAFETY" ""
check embed-BUG_NB_NO_PASS_ON bite  "-DEMBED -DPASS_ON -DNB_POLLS=1 -DBUG_NB_NO_PASS_ON" "$BUGORDER" ""
check embed-et-BUG_NB_SEES_ET_KICK bite "-DEMBED -DBUG_NB_SEES_ET_KICK" "$BUGORDER" ""
for bug in BUG_EMBED_NO_ANNOUNCE BUG_EMBED_ANNOUNCE_FLAG BUG_EMBED_NESTED_NO_PASS_ON \
           BUG_EMBED_ANNOUNCE_LATE BUG_NONBLOCKING_ACCEPT BUG_BH_WAKE_LOAD_FIRST \
           BUG_STALE_ACCEPT_AFTER_KICK; do
    check "embed-$bug"       bite   "-DEMBED -D$bug"           "$BUGORDER" ""
done
# Its liveness form: the host ends up awake whenever work is outstanding.
# One work item per producer (-DROUNDS=1: a BH and a handler change) keeps
# it to seconds and a few hundred MB; ROUNDS=2 takes a minute and 1.5 GB.
EMBED_LTL="-DEMBED -DLTL -DROUNDS=1"
check embed-correct-ltl      verify "$EMBED_LTL"               ""        "-a -f"
for bug in BUG_EMBED_NO_ANNOUNCE BUG_EMBED_NESTED_NO_PASS_ON BUG_EMBED_ANNOUNCE_LATE; do
    check "embed-$bug-ltl"   bite   "$EMBED_LTL -D$bug"        "-DREVERSE" "-a -f"
done
# The same host on io_uring (-DURING): the kick is a completion of a
# FUTEX_WAIT request that a submission must have armed (prepare's embed_arm,
# clear_kick's re-submission). ROUNDS=2 takes 50 s and 2 GB for safety alone.
URING="-DEMBED -DURING -DROUNDS=1"
check embed-uring-correct    verify "$URING"                   "$SAFETY" ""
check embed-uring-correct-ltl verify "$URING -DLTL"            ""        "-a -f"
check embed-uring-BUG_URING_CLEAR_NO_REARM bite "$URING -DBUG_URING_CLEAR_NO_REARM" "$BUGORDER" ""
# Without prepare's arm only the very first host sleep is exposed (every
# check arms again); FD_WAKES=0 keeps a descriptor from ending that sleep.
check embed-uring-BUG_URING_NO_ARM bite "$URING -DFD_WAKES=0 -DBUG_URING_NO_ARM" "$BUGORDER" ""

# aio_wait_while / aio_wait_kick (src/wait.c) on top of the blocking poll:
# docs/model/wait.pml.
PML=wait check wait-correct  verify ""                         "$SAFETY" ""
for bug in BUG_WAIT_NO_COUNT BUG_WAIT_LATE_COUNT BUG_WAIT_NO_FENCE; do
    PML=wait check "wait-$bug" bite "-D$bug"                   "$BUGORDER" ""
done

# The home word (src/home.h): one blocker at a time while the home moves.
PML=home check home-correct  verify ""                         "$SAFETY" ""
PML=home check home-correct-3 verify "-DTHREADS=3"              "$SAFETY" ""
for bug in BUG_HOME_CHECK_THEN_ADD BUG_HOME_SET_IGNORES_DEPTH BUG_HOME_SET_RESETS_DEPTH; do
    PML=home check "home-$bug" bite "-D$bug"                   "$BUGORDER" ""
done

# The dispatch right (src/dispatch.h): the word, the waiter's mark and the
# hand-off between another thread's non-blocking poll and the home thread.
PML=dispatch check dispatch-correct verify ""                  "$SAFETY" ""
PML=dispatch check dispatch-correct-3 verify "-DFOREIGN=3 -DROUNDS=3" "$SAFETY" ""
for bug in BUG_DISPATCH_MARK_STORE BUG_DISPATCH_RELEASE_STORE BUG_DISPATCH_NO_HANDOFF; do
    PML=dispatch check "dispatch-$bug" bite "-D$bug"           "$BUGORDER" ""
done
# An embedded dispatch whose callback detaches, and a thread that adopts the
# context meanwhile: the dispatch's own count on the home word.
PML=dispatch check dispatch-adopt-correct verify "-DADOPT"      "$SAFETY" ""
PML=dispatch check dispatch-adopt-BUG_EMBED_DISPATCH_NO_COUNT bite \
    "-DADOPT -DBUG_EMBED_DISPATCH_NO_COUNT" "$BUGORDER" ""

# The worker pool (src/work.c): the claim of a job by a worker or a cancel,
# the idle workers' spin, park and counted wake: docs/model/pool.pml.
PML=pool check pool-correct  verify ""                         "$SAFETY" ""
for bug in BUG_POOL_CLAIM_NOT_ATOMIC BUG_POOL_NO_WAKE BUG_POOL_NO_RECHECK \
           BUG_POOL_LATE_UNSPIN BUG_POOL_NO_CHAIN; do
    PML=pool check "pool-$bug" bite "-D$bug"                   "$BUGORDER" ""
done
# Three workers and three jobs: a take that reads the stack only behind an
# empty ready list strands a job (stop 23). The correct -DTHREE model
# verifies too, but takes 1.35e8 states, 3.5 min and 6.8 GB: run by hand
# (docs/model/pool.pml), not here.
PML=pool check pool-three-BUG_POOL_TAKE_READY_ONLY bite \
    "-DTHREE -DBUG_POOL_TAKE_READY_ONLY" "$BUGORDER" ""

# The win32 backend's embedding (src/win32/backend-win32.c): the watcher
# thread that sets the host's aggregate event, its arming by embed_arm, the
# nested poll's rescan poke: docs/model/win32-watcher.pml.
PML=win32-watcher check w32-watcher-correct verify ""          "$SAFETY" ""
for bug in BUG_W32_ARMED_FLAG BUG_W32_RESET_AFTER_ARM BUG_W32_NO_RESCAN; do
    PML=win32-watcher check "w32-$bug" bite "-D$bug"           "$BUGORDER" ""
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
