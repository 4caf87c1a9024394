# Sourced after common.sh by the tests of `volmig serve`.
#
# serve NAME ARGS... starts the server under test with volmig serve's own
# command line (see DESIGN.md) and sets NAME_pid.  It is volmig serve unless
# SERVE_STANDIN names a stand-in, a development aid for writing the tests
# before or apart from the server:
#   SERVE_STANDIN=qemu-nbd   qemu-nbd with the equivalent options
# The stand-in does not promise everything volmig does (block sizes,
# multi-conn); checks of those go through strict(), which fails under volmig
# and only warns under a stand-in.

SERVE_STANDIN=${SERVE_STANDIN:-}
BADCLIENT="$TOP/$BUILD/tests/tools/nbd_badclient"

serve() {
    local name=$1; shift
    case "$SERVE_STANDIN" in
        "")       start_serve "$name" "$@" ;;
        qemu-nbd) _serve_qemu_nbd "$name" "$@" ;;
        *)        fail "unknown SERVE_STANDIN=$SERVE_STANDIN" ;;
    esac
}

strict() { # MESSAGE CMD... : CMD must succeed (volmig); a warning under a stand-in
    local msg=$1; shift
    "$@" && return 0
    [ -n "$SERVE_STANDIN" ] || fail "$msg"
    log "WARNING (stand-in $SERVE_STANDIN): $msg"
}

# serve_argv ARGS... : sets SERVE_ARGV to the command line that runs the
# server under test with volmig serve's options ARGS.  For qemu-nbd, --size
# becomes the raw driver's size option, which also refuses a size beyond
# the file.
serve_argv() {
    if [ -z "$SERVE_STANDIN" ]; then SERVE_ARGV=("$VOLMIG" serve "$@"); return; fi
    [ "$SERVE_STANDIN" = qemu-nbd ] || fail "unknown SERVE_STANDIN=$SERVE_STANDIN"
    local target="" size="" listen="127.0.0.1:10809" export="" ro=() once=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --target) target=$2; shift ;;
            --size) size=$2; shift ;;
            --listen) listen=$2; shift ;;
            --export) export=$2; shift ;;
            --readonly) ro=(-r) ;;
            --once) once=1 ;;
            *) fail "stand-in: unknown option $1" ;;
        esac
        shift
    done
    local where=()
    case "$listen" in
        unix:*) where=(-k "${listen#unix:}") ;;
        *) where=(-b "${listen%:*}" -p "${listen##*:}") ;;
    esac
    local img=(-f raw "$target")
    [ -n "$size" ] && img=(--image-opts "driver=raw,size=$size,file.driver=file,file.filename=$target")
    local keep=(-t -e 16)
    [ $once = 1 ] && keep=()
    # qemu-nbd exports a raw size beyond the file; only the refusal is
    # emulated here so that a stand-in run gets past it.
    if [[ $size =~ ^[0-9]+$ ]] && [ -f "$target" ] && [ "$size" -gt "$(stat -c %s "$target")" ]; then
        SERVE_ARGV=(sh -c 'echo "stand-in: --size beyond the target" >&2; exit 1')
        return
    fi
    SERVE_ARGV=(qemu-nbd "${img[@]}" -x "$export" "${where[@]}" "${ro[@]}" "${keep[@]}" --cache=none)
    SERVE_LISTEN=$listen
}

_serve_qemu_nbd() {
    local name=$1; shift
    serve_argv "$@"
    local listen=$SERVE_LISTEN
    "${SERVE_ARGV[@]}" >"$T/$name.log" 2>&1 &
    local pid=$!
    track_pid $pid
    eval "${name}_pid=$pid"
    local ok=0
    for _ in $(seq 200); do
        kill -0 $pid 2>/dev/null || break
        case "$listen" in
            unix:*) [ -S "${listen#unix:}" ] && { ok=1; break; } ;;
            *) ss -Htln "sport = :${listen##*:}" | grep -q . && { ok=1; break; } ;;
        esac
        sleep 0.05
    done
    [ $ok = 1 ] || { cat "$T/$name.log" >&2; fail "stand-in qemu-nbd ($name) did not start"; }
    echo "volmig serve: listening on $listen (stand-in qemu-nbd)" >>"$T/$name.log"
}

# sha FILE [LEN] : sha256 of the file, or of its first LEN bytes.
sha() {
    if [ -n "${2:-}" ]; then head -c "$2" "$1" | sha256sum | cut -d' ' -f1
    else sha256sum "$1" | cut -d' ' -f1; fi
}

# Pattern-checked I/O through qemu-io on an NBD URI.
qio() { # [-r] URI CMD... : each CMD one qemu-io command; fails on any error
    local a=() c out
    [ "$1" = -r ] && { a+=(-r); shift; }
    local uri=$1; shift
    for c in "$@"; do a+=(-c "$c"); done
    out=$(qemu-io -f raw "${a[@]}" "$uri" 2>&1) || { echo "$out" >&2; return 1; }
    # qemu-io reports pattern mismatches and I/O errors without an exit status.
    if grep -Eqi 'fail|error|mismatch' <<<"$out"; then echo "$out" >&2; return 1; fi
    return 0
}

# Asserts that a file's allocated size is printed for information only.
report_alloc() { # FILE LABEL
    log "$2: $(du -k --apparent-size "$1" | cut -f1) KiB apparent, $(du -k "$1" | cut -f1) KiB allocated"
}

# mirror_to_serve SOURCE PORT : the real job.  A guest-less QEMU opens
# SOURCE as raw node "disk0", attaches the NBD export on PORT as node "tgt"
# and runs blockdev-mirror sync=full into it.  While the job copies, and
# again once it is READY, qemu-io writes land on disk0 (as a guest's writes
# would) so the mirror has dirty blocks to resend.  Then a non-forced
# block-job-cancel, which leaves a READY mirror's target consistent with the
# source, and the NBD node is removed (QEMU flushes and disconnects).
mirror_to_serve() {
    local src=$1 port=$2
    start_qemu q "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":{\"driver\":\"file\",\"filename\":\"$src\"}}"
    local m="$T/q.qmp"
    qmp "$m" blockdev-add "{\"driver\":\"nbd\",\"node-name\":\"tgt\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"$port\"},\"export\":\"\"}" \
        >/dev/null || fail "blockdev-add of the NBD target failed"
    qmp "$m" blockdev-mirror '{"job-id":"m0","device":"disk0","target":"tgt","sync":"full"}' \
        >/dev/null || fail "blockdev-mirror failed"
    hmp_io "$m" "write -P 0x5a 4096 64k" "write -z 1M 128k"
    qmp "$m" --wait-job m0 ready --timeout 300 >/dev/null || fail "mirror m0 never became READY"
    hmp_io "$m" "write -P 0xa5 2M 12288" "write -P 0x3c 100000 513"
    qmp "$m" block-job-cancel '{"device":"m0"}' >/dev/null || fail "block-job-cancel failed"
    wait_for 120 job_gone "$m" m0 || fail "mirror m0 did not finish after cancel"
    qmp "$m" blockdev-del '{"node-name":"tgt"}' >/dev/null || fail "blockdev-del of the NBD target failed"
    # The source file must hold every write before it is compared.
    hmp_io "$m" "flush"
}

# hmp_io QMP-SOCKET CMD... : qemu-io commands on node disk0 through HMP
hmp_io() {
    local m=$1 c out; shift
    for c in "$@"; do
        out=$(qmp "$m" human-monitor-command "{\"command-line\":\"qemu-io disk0 \\\"$c\\\"\"}") \
            || fail "HMP qemu-io '$c' failed"
        grep -qiE 'error|fail' <<<"$out" && fail "HMP qemu-io '$c': $out"
    done
    return 0
}

job_gone() { # QMP-SOCKET JOB
    ! qmp "$1" query-block-jobs | grep -q "\"device\": \"$2\""
}
