#!/usr/bin/env bash
# A libvirtd good enough to run a QEMU domain on a test machine or inside a
# container, as root, after `make deps`.  Idempotent: every step checks
# first, so tests can call it each time.
#
#   tests/lib/libvirt.sh daemon              libvirtd is running and answers
#   tests/lib/libvirt.sh start NAME IMAGE... a transient type='qemu' domain
#                                            with the IMAGEs (raw) as its
#                                            disks vda, vdb, ...
#   tests/lib/libvirt.sh define NAME IMAGE... the same, persistent (defined,
#                                            then started), as KubeVirt's
#                                            virt-launcher has it
#   tests/lib/libvirt.sh destroy NAME        stops it, and undefines a
#                                            persistent one (nothing stays
#                                            defined)
#   LIBVIRT_URI=URI tests/lib/libvirt.sh start|define|destroy ...
#                                            the same on another libvirtd
#
# Two hosts on one machine (the single-host daemon above is untouched):
#   tests/lib/libvirt.sh host-up HOST NETNS  a libvirtd of its own for HOST,
#                                            in network namespace NETNS (the
#                                            caller's, see netns.sh) and in a
#                                            private mount namespace where
#                                            /etc/libvirt, /run/libvirt,
#                                            /var/lib/libvirt, /var/cache/
#                                            libvirt and /var/log/libvirt are
#                                            HOST's own directories under
#                                            /tmp/volmig-lvhost-HOST, with a
#                                            host_uuid of its own; prints its
#                                            URI
#   tests/lib/libvirt.sh host-uri HOST       qemu+unix:///system?socket=...
#   tests/lib/libvirt.sh host-down HOST      destroys and undefines HOST's
#                                            domains, stops its libvirtd,
#                                            removes its directory
# The mounts exist only inside the daemon's mount namespace, which goes
# away with the daemon and its QEMUs.
#
# What the daemon needs on a bare machine: the users and groups the Debian
# package expects, its directories, and a qemu.conf that runs QEMU as root
# without the parts a container lacks (security drivers, mount namespaces,
# cgroups, virtlogd).
set -euo pipefail
URI=${LIBVIRT_URI:-qemu:///system}
CONF=/etc/libvirt/qemu.conf
MARK="# volmig test recipe (tests/lib/libvirt.sh)"

die() { echo "libvirt.sh: $*" >&2; exit 1; }

answers() { virsh -c "$URI" version >/dev/null 2>&1; }

setup_system() {
    getent group kvm >/dev/null || groupadd -r kvm
    getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
    getent passwd libvirt-qemu >/dev/null \
        || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
    mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt/qemu \
             /var/cache/libvirt/qemu
    if ! grep -qF "$MARK" "$CONF" 2>/dev/null; then
        mkdir -p "$(dirname "$CONF")"
        cat >>"$CONF" <<EOF

$MARK
user = "root"
group = "root"
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
EOF
        return 0    # changed: a running daemon must re-read it
    fi
    return 1
}

# The system daemon's pid, from the pid file libvirtd -d writes; not
# pidof, which also finds the two-host recipe's daemons.
system_pid() {
    local pid
    pid=$(cat /run/libvirtd.pid 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = libvirtd ] && echo "$pid"
}

stop_system() {
    local pid
    pid=$(system_pid) || return 0
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

daemon() {
    [ "$(id -u)" = 0 ] || die "needs root"
    command -v libvirtd >/dev/null || die "no libvirtd (make deps: libvirt-daemon-system)"
    local changed=0
    setup_system && changed=1
    # A daemon started before the recipe's qemu.conf existed must re-read it.
    [ $changed = 1 ] && stop_system
    if ! system_pid >/dev/null; then
        # The system daemon outlives the test that starts it, on purpose: it
        # is not the test's, so it does not carry the test's tag
        # (tests/lib/leftovers.sh).
        env -u VOLMIG_TAG libvirtd -d
    fi
    for _ in $(seq 200); do answers && return 0; sleep 0.1; done
    die "libvirtd does not answer on $URI"
}

# The domain XML: a type='qemu' guest with no OS, the IMAGEs (raw) as
# virtio disks vda, vdb, ...
domain_xml() { # NAME IMAGE...
    local name=$1 i=0 img letters=abcdefghijklmnop
    shift
    cat <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
EOF
    for img in "$@"; do
        cat <<EOF
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$img'/>
      <target dev='vd${letters:$i:1}' bus='virtio'/>
    </disk>
EOF
        i=$((i + 1))
    done
    cat <<EOF
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

start() { # transient|persistent NAME IMAGE...
    local kind=$1 name=$2 xml ok=1
    shift 2
    [ -n "${LIBVIRT_URI:-}" ] || daemon
    if virsh -c "$URI" domstate "$name" 2>/dev/null | grep -q running; then
        return 0
    fi
    xml=$(mktemp /tmp/volmig-domain.XXXXXX.xml)
    domain_xml "$name" "$@" >"$xml"
    if [ "$kind" = transient ]; then
        virsh -c "$URI" create "$xml" >/dev/null || ok=0
    else
        { virsh -c "$URI" define "$xml" >/dev/null && virsh -c "$URI" start "$name" >/dev/null; } \
            || ok=0
    fi
    rm -f "$xml"
    if [ $ok = 0 ]; then
        tail -n 20 "/var/log/libvirt/qemu/$name.log" >&2 2>/dev/null || true
        destroy "$name"
        die "domain $name did not start"
    fi
}

destroy() {
    virsh -c "$URI" destroy "$1" >/dev/null 2>&1 || true
    virsh -c "$URI" undefine "$1" >/dev/null 2>&1 || true
}

# ---- two hosts ----

host_dir() { echo "/tmp/volmig-lvhost-$1"; }
host_uri() { echo "qemu+unix:///system?socket=$(host_dir "$1")/run/libvirt-sock"; }

# The directories libvirtd writes, each bound over the system's path in
# the daemon's mount namespace.
HOST_MOUNTS="etc:/etc/libvirt run:/run/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt"

host_up() {
    local host=$1 ns=$2 dir binds="" m pid
    dir=$(host_dir "$host")
    [ "$(id -u)" = 0 ] || die "needs root"
    command -v libvirtd >/dev/null || die "no libvirtd (make deps: libvirt-daemon-system)"
    ip netns pids "$ns" >/dev/null 2>&1 || die "no network namespace $ns"
    [ -e "$dir" ] && die "$dir exists: host $host is up, or was not taken down"
    # The users, groups and qemu.conf the recipe wants; a system daemon
    # started before must re-read it (the next `daemon` starts it again).
    setup_system && stop_system
    mkdir -p "$dir"/{run,lib/qemu,cache/qemu,log/qemu}
    # QEMU's capabilities as the system daemon probed them: libvirt checks
    # them and probes again (some seconds) when it finds them stale, which
    # it does here because of /dev/kvm (virQEMUCapsKVMUsable).
    cp -a /var/cache/libvirt/qemu/capabilities "$dir/cache/qemu/" 2>/dev/null || true
    # The system's configuration, without its domains, networks and
    # secrets; the daemon gets its own identity and open local sockets.
    cp -a /etc/libvirt "$dir/etc"
    rm -rf "$dir/etc/qemu" "$dir/etc/secrets"
    mkdir -p "$dir/etc/qemu"
    cat >"$dir/etc/libvirtd.conf" <<EOF
$MARK
host_uuid = "$(cat /proc/sys/kernel/random/uuid)"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    for m in $HOST_MOUNTS; do
        binds+="mount --bind $dir/${m%%:*} ${m#*:} && "
    done
    # ip netns exec and unshare both exec: the pid stays libvirtd's.
    setsid ip netns exec "$ns" unshare -m --propagation private sh -c \
        "${binds}exec libvirtd -p /run/libvirt/libvirtd.pid" \
        </dev/null >"$dir/libvirtd.out" 2>&1 &
    pid=$!
    echo $pid >"$dir/daemon.pid"
    for _ in $(seq 200); do
        virsh -c "$(host_uri "$host")" version >/dev/null 2>&1 && { host_uri "$host"; return 0; }
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/libvirtd.out" >&2
    host_down "$host"
    die "the libvirtd of host $host does not answer"
}

host_down() {
    local host=$1 dir uri pid d
    dir=$(host_dir "$host")
    uri=$(host_uri "$host")
    [ -d "$dir" ] || return 0
    pid=$(cat "$dir/daemon.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        for d in $(timeout 20 virsh -c "$uri" list --all --name 2>/dev/null); do
            timeout 20 virsh -c "$uri" destroy "$d" >/dev/null 2>&1 || true
            timeout 20 virsh -c "$uri" undefine "$d" >/dev/null 2>&1 || true
        done
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    daemon) daemon ;;
    start) [ $# -ge 3 ] || die "usage: start NAME IMAGE..."; shift; start transient "$@" ;;
    define) [ $# -ge 3 ] || die "usage: define NAME IMAGE..."; shift; start persistent "$@" ;;
    destroy) [ $# = 2 ] || die "usage: destroy NAME"; destroy "$2" ;;
    host-up) [ $# = 3 ] || die "usage: host-up HOST NETNS"; host_up "$2" "$3" ;;
    host-uri) [ $# = 2 ] || die "usage: host-uri HOST"; host_uri "$2" ;;
    host-down) [ $# = 2 ] || die "usage: host-down HOST"; host_down "$2" ;;
    *) die "usage: libvirt.sh daemon | start NAME IMAGE... | define NAME IMAGE... | destroy NAME | host-up HOST NETNS | host-uri HOST | host-down HOST" ;;
esac
