# Sourced by tests/run.sh and by the hygiene tests: what a test (or a demo)
# left behind, found by its tag, and the sweep that removes it.
#
# A tag is a word without dots, exported as VOLMIG_TAG before a test starts
# (tests/run.sh gives each test its own).  tests/lib/common.sh puts it into
# the name of every scratch directory (DIR/volmig-test.TAG.XXXXXX), and every
# process a test starts inherits it in its environment, so both can be told
# apart from another run's on the same machine; a QEMU that libvirtd starts
# does not inherit it, but its command line names a file in a scratch
# directory.  Network namespaces are listed, one "netns NAME" a line, in the
# ledger file VOLMIG_LEDGER names.
#
#   leftovers TAG [LEDGER]        prints one line per thing left; status 1
#                                 if there is any.  TAG may end in '*' to
#                                 match every tag starting so.
#   sweep_leftovers TAG [LEDGER]  kills, deletes, detaches what leftovers
#                                 finds (SIGKILL: a test that is over had
#                                 its chance to stop them politely)

_lo_pat() { # TAG : an extended regex for the tag
    local t=$1
    case "$t" in *'*') printf '%s[A-Za-z0-9_-]*' "${t%\*}" ;; *) printf '%s' "$t" ;; esac
}

# _lo_pids TAG : the processes carrying TAG in their environment or naming a
# TAG directory on their command line.  The patterns go in through a file so
# that grep's own command line does not match.
_lo_pids() {
    local pat f p
    pat=$(_lo_pat "$1")
    f=$(mktemp)
    printf '^VOLMIG_TAG=%s$\n' "$pat" >"$f"
    {
        grep -lzEf "$f" /proc/[0-9]*/environ 2>/dev/null
        printf '/volmig-[a-z-]*\\.%s\\.\n' "$pat" >"$f"
        grep -lzEf "$f" /proc/[0-9]*/cmdline 2>/dev/null
    } | sed -n 's|^/proc/\([0-9]*\)/.*|\1|p' | sort -un | while read -r p; do
        [ "$p" = "$$" ] || [ "$p" = "${BASHPID:-}" ] && continue
        # A zombie is gone already; it only waits for its parent.
        [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && continue
        # So is a process whose memory is already released (an empty
        # command line): it is in the last steps of its exit, as a server
        # killed a moment before may still be under a slow (sanitized)
        # build.
        # (procfs gives every file a size of 0: read it.)
        [ -n "$(tr -d '\0' <"/proc/$p/cmdline" 2>/dev/null)" ] || continue
        [ -e "/proc/$p" ] && echo "$p"
    done
    rm -f "$f"
}

_lo_dirs() { # TAG
    local pat d
    pat=$(_lo_pat "$1")
    for d in /tmp/volmig-* /var/tmp/volmig-* /dev/shm/volmig-*; do
        [ -e "$d" ] || continue
        [[ "$d" =~ /volmig-[a-z-]*\.${pat}\. ]] && echo "$d"
    done
    return 0
}

_lo_loops() { # TAG : loop devices backed by a file in a TAG directory
    local pat
    pat=$(_lo_pat "$1")
    command -v losetup >/dev/null || return 0
    losetup -a 2>/dev/null | grep -E "/volmig-[a-z-]*\\.${pat}\\." | cut -d: -f1 || true
}

_lo_mounts() { # TAG : file systems mounted in a TAG directory
    local pat
    pat=$(_lo_pat "$1")
    awk '{print $2}' /proc/mounts | grep -E "/volmig-[a-z-]*\\.${pat}\\." || true
}

_lo_netns() { # LEDGER
    [ -n "${1:-}" ] && [ -f "$1" ] || return 0
    local have n
    have=$(ip netns list 2>/dev/null | awk '{print $1}')
    for n in $(sed -n 's/^netns //p' "$1" | sort -u); do
        grep -qxF "$n" <<<"$have" && echo "$n"
    done
    return 0
}

leftovers() { # TAG [LEDGER]
    local p found=0 x
    for p in $(_lo_pids "$1"); do
        echo "process $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-160)"
        found=1
    done
    for x in $(_lo_netns "${2:-}"); do echo "network namespace $x"; found=1; done
    for x in $(_lo_mounts "$1"); do echo "mount $x"; found=1; done
    for x in $(_lo_loops "$1"); do echo "loop device $x"; found=1; done
    # KEEP=1 asks tests to keep their directories (common.sh): not a leak.
    [ -n "${KEEP:-}" ] || for x in $(_lo_dirs "$1"); do echo "directory $x"; found=1; done
    [ $found = 0 ]
}

sweep_leftovers() { # TAG [LEDGER]
    local p x
    for p in $(_lo_pids "$1"); do kill -9 "$p" 2>/dev/null; done
    for _ in $(seq 50); do [ -z "$(_lo_pids "$1")" ] && break; sleep 0.1; done
    for x in $(_lo_netns "${2:-}"); do ip netns del "$x" 2>/dev/null; done
    for x in $(_lo_mounts "$1"); do umount -l "$x" 2>/dev/null; done
    for x in $(_lo_loops "$1"); do losetup -d "$x" 2>/dev/null; done
    [ -n "${KEEP:-}" ] || for x in $(_lo_dirs "$1"); do rm -rf "$x"; done
    return 0
}
