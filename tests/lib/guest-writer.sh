# Sourced after tests/lib/common.sh: the guest that writes through its disk
# device (tests/tools/guest_writer.S, built by make), for the tests and the
# bench that need a real guest's I/O.  It writes 0x5a over the 16 MiB from
# 1 MiB on, round and round; after its first round its writes change no
# byte, so a copy taken at any moment after that equals the disk.

GUEST_WRITER=$TOP/$BUILD/tests/tools/guest_writer.bin
[ -s "$GUEST_WRITER" ] || fail "no $GUEST_WRITER (make builds it)"

# guest_image PATH MIB : MIB of random data, the writer as its boot sector.
guest_image() {
    random_file "$1" "$2"
    dd if="$GUEST_WRITER" of="$1" conv=notrunc status=none
}

# guest_wrote PATH : true once the guest's first round is in PATH (60 s at
# most).
guest_wrote() {
    [ -s "$T/guest-round" ] ||
        python3 -c 'import sys; sys.stdout.buffer.write(b"\x5a" * (16 << 20))' >"$T/guest-round"
    wait_for 60 cmp -s -i $((1 << 20)):0 -n $((16 << 20)) "$1" "$T/guest-round"
}

# guest_qemu BASE IMG [FILE_OPTIONS] : a q35 QEMU under TCG booting IMG
# from virtio-blk (node disk0, device vd0), its monitors at BASE.qmp and
# BASE.qmp2 (the second for the caller's probes), its log at BASE.log;
# FILE_OPTIONS are more JSON members of the file node ("cache":...).
# Sets guest_pid.
guest_qemu() {
    local file="{\"driver\":\"file\",\"filename\":\"$2\"${3:+,$3}}"
    rm -f "$1.qmp" "$1.qmp2"
    qemu-system-x86_64 -machine q35,accel=tcg -nodefaults -display none -m 64 \
        -qmp "unix:$1.qmp,server=on,wait=off" -qmp "unix:$1.qmp2,server=on,wait=off" \
        -blockdev "{\"driver\":\"raw\",\"node-name\":\"disk0\",\"file\":$file}" \
        -device virtio-blk-pci,drive=disk0,id=vd0,bootindex=1 >"$1.log" 2>&1 &
    guest_pid=$!
    track_pid $guest_pid
    wait_for 30 test -S "$1.qmp2" || { cat "$1.log"; fail "the guest's QEMU did not start"; }
}
