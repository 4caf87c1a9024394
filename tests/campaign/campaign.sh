#!/usr/bin/env bash
# The randomized fault campaign (issue 7):
#
#   tests/campaign/campaign.sh N [SEED]      N migrations (default 10)
#   ONLY=I tests/campaign/campaign.sh N SEED replays run I of that campaign
#
# Run I draws every choice from bash's PRNG seeded with SEED*1000+I, before
# it starts anything, and prints them, so one run replays on its own:
# volume count (1-3), sizes (4-64 MiB, some not 4 KiB aligned: + k*512
# bytes; never odd bytes: QEMU rounds a file node's size up to 512), sparse layout (a few scattered extents, many, or all data), a
# stale or larger target, switchover (none, pivot into file:, migrate:tcp:
# into a destination QEMU started with -incoming), destination (volmig serve
# over TCP or unix socket, or file:), guest writes (none, light, heavy: HMP
# qemu-io from tests/campaign/helpers.py writer, stopping at `ready`) and a
# cancel point (none, after `started`, after some progress, after `ready`;
# SIGINT).
#
# A mirror is held in its copy phase by --speed (about 2-4 s for the
# volume) while the guest writes; then the limit is lifted.  Every write
# the guest makes is logged and replayed onto a model of each source, so:
#   completed  exit 0; every destination equals its source's model for the
#              source's size (writes flagged "late", ones that may have raced
#              the switchover, are skipped and counted); VM running (or, for
#              migrate:, the destination running and the source postmigrate)
#   cancelled  exit 3, a `cancelled` event, the VM running
#   every run  the source equals its model; nothing of volmig left in QEMU
#              (jobs, volmig-* nodes, exports, bitmaps, objects); no process
#              left behind
# The tally closes the output; the campaign passes with zero mismatches,
# zero leftovers and zero other failures.  A harness step that fails
# (pausing, resuming or unthrottling a mirror) fails its run, and a run
# that passes its deadline (RUN_DEADLINE, 180 s) is stopped and failed.
. "$(dirname "$0")/../lib/common.sh"
. "$TOP/tests/lib/migrate-helpers.sh"
require qemu-system-x86_64 qemu-io qemu-img python3 ss

N=${1:-10}
SEED=${2:-$(( $(date +%s) % 100000 ))}
HELP="$TOP/tests/campaign/helpers.py"
echo "# campaign: $N migrations, seed $SEED (replay one: ONLY=I $0 $N $SEED)"
: >"$T/results"

# pick VAR N : VAR = a number in [0, N) from the run's PRNG.
pick() { eval "$1=$(( RANDOM % $2 ))"; }

run_one() {
    local i=$1; local RD="$T/r$i"
    mkdir -p "$RD"
    T=$RD          # the helpers keep their files under $T
    RANDOM=$(( SEED * 1000 + i ))
    local nvol sw dest rate cancel wsecs k
    local -a size dsize layout stale
    pick nvol 3; nvol=$((nvol + 1))
    for ((k = 0; k < nvol; k++)); do
        local mib extra big l s
        pick mib 61; pick extra 8; pick l 3; pick s 4; pick big 4
        size[$k]=$(( (mib + 4) * 1048576 + (extra > 3 ? (extra - 3) * 512 + 1024 : 0) ))
        layout[$k]=$l
        stale[$k]=$(( s == 0 ))
        dsize[$k]=${size[$k]}
        [ "$big" = 0 ] && dsize[$k]=$(( size[k] + (mib % 8 + 1) * 1048576 ))
    done
    local swn destn raten canceln copys
    pick swn 3; pick destn 3; pick raten 3; pick canceln 6; pick wsecs 10; pick copys 3
    sw=(none pivot migrate); sw=${sw[$swn]}
    case $sw in
        pivot)   dest=file ;;
        migrate) dest=$([ $((destn % 2)) = 0 ] && echo tcp || echo unix)
                 for ((k = 0; k < nvol; k++)); do dsize[$k]=${size[$k]}; done ;;
        none)    dest=(tcp unix file); dest=${dest[$destn]} ;;
    esac
    rate=(0 light heavy); rate=${rate[$raten]}
    case $canceln in 3) cancel=started ;; 4) cancel=progress ;; 5) cancel=ready ;; *) cancel=none ;; esac
    wsecs=$(( wsecs + 5 ))        # tenths of a second the guest writes: 0.5-1.4 s
    copys=$(( copys + 2 ))        # seconds the held copy would take: 2-4
    local desc="run $i: seed $((SEED * 1000 + i)) volumes $nvol"
    for ((k = 0; k < nvol; k++)); do
        desc+=" [${size[$k]}B layout ${layout[$k]}$([ "${stale[$k]}" = 1 ] && echo ' stale')$([ "${dsize[$k]}" != "${size[$k]}" ] && echo " target ${dsize[$k]}B")]"
    done
    desc+=" switchover $sw dest $dest writes $rate cancel $cancel"
    echo "# $desc"

    # Everything this run starts dies with it.
    trap 'for p in "${_pids[@]}"; do kill -9 "$p" 2>/dev/null; done' EXIT
    _pids=()
    # job_over JOB ERROR : the harness may find JOB gone only when volmig
    # is past it (ready, cancelled, or exited), never while it copies.
    job_over() {
        case "$2" in *"not found"*|*"No active block job"*|*DeviceNotActive*) ;; *) return 1 ;; esac
        has_event mig ready || has_event mig cancelled || ! kill -0 $mig_pid 2>/dev/null
    }

    # Sources: sparse files with scattered data, and their models.
    local vols=() nodes=() f
    for ((k = 0; k < nvol; k++)); do
        f="$RD/src$k"
        qemu-img create -q -f raw "$f" "${size[$k]}"
        local ext nx j off len
        case ${layout[$k]} in
            0) nx=3 ;; 1) nx=40 ;; 2) nx=0; dd if=/dev/urandom of="$f" bs=1M count=$(( size[k] >> 20 )) conv=notrunc status=none ;;
        esac
        for ((j = 0; j < nx; j++)); do
            pick len 256; len=$(( (len + 1) * 4096 ))
            off=$(( (RANDOM * 32768 + RANDOM) % (size[k] - len) ))
            dd if=/dev/urandom of="$f" bs=4096 count=$((len / 4096)) seek="$off" oflag=seek_bytes conv=notrunc status=none
        done
        # The tail of an unaligned volume holds data too.
        [ $(( size[k] % 4096 )) != 0 ] && printf 'tail of volume %d' $k | dd of="$f" bs=1 seek=$(( size[k] - 20 )) conv=notrunc status=none
        cp --sparse=always "$f" "$RD/model$k"
        nodes+=("disk$k:${size[$k]}")
        # Destination files.
        truncate -s "${dsize[$k]}" "$RD/dst$k"
        [ "${stale[$k]}" = 1 ] && dd if=/dev/urandom of="$RD/dst$k" bs=1M count=2 conv=notrunc status=none
    done

    # Destinations.
    for ((k = 0; k < nvol; k++)); do
        case $dest in
            file) vols+=(--volume "disk$k=file:$RD/dst$k") ;;
            tcp)  local port; port=$(free_port)
                  start_serve srv$k --target "$RD/dst$k" --listen "127.0.0.1:$port" --export vol$k
                  vols+=(--volume "disk$k=nbd://127.0.0.1:$port/vol$k") ;;
            unix) start_serve srv$k --target "$RD/dst$k" --listen "unix:$RD/srv$k.sock" --export vol$k
                  vols+=(--volume "disk$k=nbd+unix:///vol$k?socket=$RD/srv$k.sock") ;;
        esac
    done
    local swarg=$sw srcs=() dsts=()
    for ((k = 0; k < nvol; k++)); do srcs+=("$RD/src$k"); dsts+=("$RD/dst$k"); done
    local extra="-qmp unix:$RD/q.qmp3,server=on,wait=off"
    if [ $sw = migrate ]; then
        local mport; mport=$(free_port)
        QEMU_EXTRA="-m 64" dst_qemu "" dq "tcp:127.0.0.1:$mport" "${dsts[@]}"
        swarg="migrate:tcp:127.0.0.1:$mport"
        extra+=" -m 64"
    fi
    QEMU_EXTRA="$extra" src_qemu q "${srcs[@]}"
    local p="$RD/q.qmp2"
    # A memory migration that cannot finish, so that a cancel after
    # `ready` finds it under way.
    [ $sw = migrate ] && [ $cancel = ready ] && { qmp "$p" migrate-set-parameters '{"max-bandwidth":4096}' >/dev/null || fail "migrate-set-parameters"; }

    local speed=$(( size[0] / copys ))
    for ((k = 1; k < nvol; k++)); do [ $(( size[k] / copys )) -lt $speed ] && speed=$(( size[k] / copys )); done
    local t0; t0=$(date +%s.%N)
    # The harness paces the mirrors itself (--speed, then lifted through
    # QMP), so volmig's latency-aware copy, which would set each job's speed
    # again every half second, is off here (tests/integration/latency-budget.sh
    # is its test).
    migrate_bg mig --qmp "unix:$RD/q.qmp" "${vols[@]}" --switchover "$swarg" --speed $speed \
        --buf-size 1M --retries 0 --backoff 1 --latency-budget off
    wait_event mig started 30

    # The hold: the mirrors are paused (block-job-pause; a paused mirror
    # cannot turn READY, so volmig cannot switch over) for the first 40% of
    # the guest's writing time, then resumed and held only by --speed.
    local jobs=() k2
    for ((k = 0; k < nvol; k++)); do jobs+=("volmig-$mig_pid-m$k"); done
    [ $cancel = started ] && kill -INT $mig_pid
    # A harness step that fails fails the run (a mirror left paused would
    # hang it).  The one excuse: the job is gone because volmig got to the
    # end before the step (the copy was quick); then there is nothing to hold.
    local paused=() err
    if [ $cancel != started ]; then
        for k2 in "${jobs[@]}"; do
            if err=$(qmp "$p" block-job-pause "{\"device\":\"$k2\"}" 2>&1 >/dev/null); then
                paused+=("$k2")
            else
                job_over "$k2" "$err" || fail "harness: block-job-pause $k2: $err"
            fi
        done
    fi
    local wpid=""
    if [ $rate != 0 ]; then
        python3 "$HELP" writer "$RD/q.qmp3" "$RD/mig.json" "$RD/writes" $((SEED * 1000 + i)) $rate \
            "$((wsecs / 10)).$((wsecs % 10))" "${nodes[@]}" 2>"$RD/writer.err" &
        wpid=$!; _pids+=($wpid)
    fi
    sleep "$(( wsecs * 4 / 100 )).$(( wsecs * 4 % 100 ))"
    # HARNESS_FAULT (for tests/integration/campaign-harness.sh) plays the
    # failure seen in issue 15 on the first paused mirror: "resume" a resume
    # that fails, "hang" one that fails unnoticed, as `|| true` once made it.
    local fault=${HARNESS_FAULT:-}
    for k2 in "${paused[@]}"; do
        case "$fault" in
            resume) fault=; fail "harness: block-job-resume $k2 failed, the mirror stays paused: (injected)" ;;
            hang) fault=; continue ;;
        esac
        err=$(qmp "$p" block-job-resume "{\"device\":\"$k2\"}" 2>&1 >/dev/null) \
            || fail "harness: block-job-resume $k2 failed, the mirror stays paused: $err"
    done
    # A cancel "after some progress": once volume 0 is a quarter copied.  A
    # mirror can still get to READY first (the job is then gone and shows no
    # progress): that cancel counts as one after `ready`.
    local after_ready=0
    progress_point() {
        job_progress_over "$p" "volmig-$mig_pid-m0" $(( size[0] / 4 )) || has_event mig ready ||
            ! kill -0 $mig_pid 2>/dev/null
    }
    if [ $cancel = progress ]; then
        wait_for 30 progress_point || fail "no progress"
        has_event mig ready && after_ready=1
        kill -INT $mig_pid 2>/dev/null || true
    fi
    if [ -n "$wpid" ]; then
        wait $wpid || fail "the guest writer failed: $(cat "$RD/writer.err")"
    else
        sleep "0.$wsecs"
    fi
    # Lift the hold: the copy runs to READY at full speed.
    for k2 in "${jobs[@]}"; do
        err=$(qmp "$p" block-job-set-speed "{\"device\":\"$k2\",\"speed\":0}" 2>&1 >/dev/null) \
            || job_over "$k2" "$err" || fail "harness: block-job-set-speed $k2: $err"
    done
    if [ $cancel = ready ]; then
        wait_for 60 has_event mig ready || ! kill -0 $mig_pid 2>/dev/null || fail "never ready"
        if [ $sw = migrate ]; then
            wait_for 30 bash -c "[ \"\$(python3 '$QMPPY' '$p' query-migrate | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"status\",\"\"))')\" = active ]" \
                || ! kill -0 $mig_pid 2>/dev/null || fail "harness: the memory migration never became active"
        fi
        kill -INT $mig_pid 2>/dev/null || true
    fi
    migrate_wait mig
    local secs; secs=$(python3 -c "import time; print('%.1f' % (time.time() - $t0))")

    # The model: every logged guest write, in order, on the model files.
    local skip=() late=0
    if [ -s "$RD/writes" ]; then
        for ((k = 0; k < nvol; k++)); do
            local c=()
            while read -r node off len pat flag; do
                [ "$node" = "disk$k" ] || continue
                c+=(-c "write -P $pat $off $len")
                if [ "$flag" = late ]; then skip[$k]+=" $off:$len"; late=$((late + 1)); fi
            done <"$RD/writes"
            [ ${#c[@]} = 0 ] || qemu-io -f raw "${c[@]}" "$RD/model$k" >/dev/null || fail "model writes"
        done
    fi
    local nwrites=0; [ -f "$RD/writes" ] && nwrites=$(wc -l <"$RD/writes")

    local outcome mism=0 left=0 bad=""
    case $mig_rc in
        0) outcome=completed ;;
        3) outcome=cancelled ;;
        *) outcome=failed; bad+=" exit $mig_rc" ;;
    esac
    [ $cancel = none ] && [ $outcome = cancelled ] && bad+=" cancelled without a signal"
    case $cancel in started|progress) [ $outcome = completed ] && [ $after_ready = 0 ] && bad+=" completed despite a cancel" ;; esac
    [ $after_ready = 1 ] && echo "#   (the mirrors were READY before the progress point: a cancel after ready)"
    [ $outcome = cancelled ] && [ "$(count_event mig cancelled)" != 1 ] && bad+=" no cancelled event"

    for ((k = 0; k < nvol; k++)); do
        python3 "$HELP" compare "$RD/src$k" "$RD/model$k" "${size[$k]}" >"$RD/cmp" \
            || { mism=$((mism + 1)); echo "#   MISMATCH: source $k is not its model: $(cat "$RD/cmp")"; }
        if [ $outcome = completed ]; then
            # shellcheck disable=SC2086
            python3 "$HELP" compare "$RD/dst$k" "$RD/model$k" "${size[$k]}" ${skip[$k]:-} >"$RD/cmp" \
                || { mism=$((mism + 1)); echo "#   MISMATCH: destination $k differs from source: $(cat "$RD/cmp")"; }
        fi
    done

    # What QEMU holds, and what runs.
    local st="" lines
    if lines=$(python3 "$HELP" probe "$p" 2>&1); then
        st=$(sed -n 's/^status //p' <<<"$lines")
        if grep -qv '^status ' <<<"$lines"; then
            left=$((left + $(grep -cv '^status ' <<<"$lines")))
            echo "#   LEFTOVER: $(grep -v '^status ' <<<"$lines" | tr '\n' ' ')"
        fi
    else
        bad+=" source QEMU unreachable ($lines)"
    fi
    if [ $sw = migrate ] && [ $outcome = completed ]; then
        [ "$st" = postmigrate ] || bad+=" source status $st after a memory migration"
        local dst_st; dst_st=$(qemu_status "$RD/dq.qmp2")
        [ "$dst_st" = running ] || bad+=" destination QEMU status $dst_st"
    else
        [ "$st" = running ] || { sleep 1; st=$(python3 "$HELP" probe "$p" | sed -n 's/^status //p'); }
        [ "$st" = running ] || bad+=" VM status $st"
    fi
    local known=" ${_pids[*]} " stray=""
    for k in $(pgrep -f "$RD" || true); do
        [[ "$known" == *" $k "* ]] || stray+=" $k:$(tr '\0' ' ' </proc/$k/cmdline 2>/dev/null | cut -c1-80)"
    done
    [ -n "$stray" ] && { left=$((left + 1)); echo "#   LEFTOVER process:$stray"; }

    echo "#   -> $outcome (exit $mig_rc) in ${secs}s, $nwrites guest writes ($late late), $(events mig | grep -vx progress | tr '\n' ' ')"
    [ -n "$bad" ] && echo "#   FAILURE:$bad"
    if [ -n "$bad" ] || [ $mism != 0 ] || [ $left != 0 ]; then
        echo "#   last lines of volmig's output:"; tail -n 5 "$RD/mig.json" | sed 's/^/#     /'
        sed 's/^/#     stderr: /' "$RD/mig.err"
    fi
    echo "$i $outcome $mism $left $([ -n "$bad" ] && echo 1 || echo 0) $late $nwrites" >>"$RESULTS"
    # Keep the files of a run that went wrong when KEEP is set.
    if [ -z "$bad" ] && [ $mism = 0 ] && [ $left = 0 ] || [ -z "${KEEP:-}" ]; then
        rm -f "$RD"/src* "$RD"/dst* "$RD"/model*
    fi
}

RESULTS="$T/results"
# Each run has a deadline (RUN_DEADLINE seconds): past it, the run is
# stopped, counted as a failure, and whatever it started is killed.
RUN_DEADLINE=${RUN_DEADLINE:-180}
start=$(date +%s)
for ((r = 0; r < N; r++)); do
    [ -n "${ONLY:-}" ] && [ "$ONLY" != $r ] && continue
    rc=0
    # run_one in a || list, as it always ran: errexit stays off inside it
    # (its steps check what they must, and fail).
    ( set -euo pipefail; trap 'exit 143' TERM; run_one $r || exit $? ) &
    rp=$!
    end=$(( $(date +%s) + RUN_DEADLINE ))
    while kill -0 $rp 2>/dev/null && [ "$(date +%s)" -lt $end ]; do sleep 0.2; done
    if kill -0 $rp 2>/dev/null; then
        echo "#   FAILURE: run $r passed its deadline of $RUN_DEADLINE s; stopped"
        kill -TERM $rp 2>/dev/null || true
        for _ in $(seq 100); do kill -0 $rp 2>/dev/null || break; sleep 0.1; done
        kill -9 $rp 2>/dev/null || true
        echo "$r deadline 0 0 1 0 0" >>"$RESULTS"
    fi
    wait $rp || rc=$?
    # What the run started and left (its files are under $T/r$r, on every
    # command line that matters) goes now, so the next run starts clean.
    for p in $(pgrep -f "$T/r$r/" || true); do kill -9 "$p" 2>/dev/null || true; done
    if ! grep -q "^$r " "$RESULTS"; then
        echo "#   FAILURE: run $r stopped early (exit $rc)"
        echo "$r aborted 0 0 1 0 0" >>"$RESULTS"
    fi
done

read -r runs completed cancelled mism left failures late writes < <(awk '
    { n++; c += ($2 == "completed"); x += ($2 == "cancelled"); m += $3; l += $4; f += $5; lt += $6; w += $7 }
    END { print n+0, c+0, x+0, m+0, l+0, f+0, lt+0, w+0 }' "$RESULTS")
echo
echo "campaign seed $SEED: runs $runs, completed $completed, cancelled $cancelled, mismatches $mism, leftovers $left, other failures $failures ($writes guest writes, $late late) in $(( $(date +%s) - start )) s"
[ "$mism" = 0 ] && [ "$left" = 0 ] && [ "$failures" = 0 ] && [ "$runs" -gt 0 ]
