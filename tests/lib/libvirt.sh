#!/usr/bin/env bash
# A libvirtd good enough to run a QEMU domain on a test machine or inside a
# container, as root, after `make deps`.  Idempotent: every step checks
# first, so tests can call it each time.
#
#   tests/lib/libvirt.sh daemon              libvirtd is running and answers
#   tests/lib/libvirt.sh start NAME IMAGE    a transient type='qemu' domain
#                                            with IMAGE (raw) as its disk vda
#   tests/lib/libvirt.sh destroy NAME        stops it (nothing stays defined)
#
# What the daemon needs on a bare machine: the users and groups the Debian
# package expects, its directories, and a qemu.conf that runs QEMU as root
# without the parts a container lacks (security drivers, mount namespaces,
# cgroups, virtlogd).
set -euo pipefail
URI=qemu:///system
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

daemon() {
    [ "$(id -u)" = 0 ] || die "needs root"
    command -v libvirtd >/dev/null || die "no libvirtd (make deps: libvirt-daemon-system)"
    local changed=0
    setup_system && changed=1
    if [ $changed = 1 ] && pid=$(pidof libvirtd); then
        # The daemon was started before the recipe's qemu.conf existed.
        kill $pid
        for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    fi
    if ! pidof libvirtd >/dev/null; then
        # The daemon outlives the test that starts it, on purpose: it is not
        # the test's, so it does not carry the test's tag (leftovers.sh).
        env -u VOLMIG_TAG libvirtd -d
    fi
    for _ in $(seq 200); do answers && return 0; sleep 0.1; done
    die "libvirtd does not answer on $URI"
}

start() {
    local name=$1 image=$2
    daemon
    if virsh -c "$URI" domstate "$name" 2>/dev/null | grep -q running; then
        return 0
    fi
    local xml
    xml=$(mktemp /tmp/volmig-domain.XXXXXX.xml)
    cat >"$xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$image'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
    if ! virsh -c "$URI" create "$xml" >/dev/null; then
        rm -f "$xml"
        tail -n 20 "/var/log/libvirt/qemu/$name.log" >&2 2>/dev/null || true
        die "domain $name did not start"
    fi
    rm -f "$xml"
}

destroy() {
    virsh -c "$URI" destroy "$1" >/dev/null 2>&1 || true
}

case "${1:-}" in
    daemon) daemon ;;
    start) [ $# = 3 ] || die "usage: start NAME IMAGE"; start "$2" "$3" ;;
    destroy) [ $# = 2 ] || die "usage: destroy NAME"; destroy "$2" ;;
    *) die "usage: libvirt.sh daemon | start NAME IMAGE | destroy NAME" ;;
esac
