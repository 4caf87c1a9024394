#!/usr/bin/env python3
"""Bench images (not part of the product).

    mkimage.py dense PATH BYTES
        BYTES of random data (AES-CTR keystream from openssl: os.urandom
        is several times slower than the disk here).
    mkimage.py sparse PATH VIRTUAL DATA
        A raw image of VIRTUAL bytes holding DATA bytes of random data in
        256 KiB extents, one per equal slot at a 64 KiB-aligned place inside
        it (fixed seed, so every run mirrors the same layout); the rest are
        holes.
"""
import os, random, subprocess, sys

CHUNK = 256 << 10
ALIGN = 64 << 10


def dense(path, size):
    with open(path, "wb") as f:
        gen = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pbkdf2",
             "-pass", "pass:volmig-bench", "-in", "/dev/zero"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        left = size
        while left:
            buf = gen.stdout.read(min(left, 8 << 20))
            if not buf:
                sys.exit("mkimage.py: openssl stopped early")
            f.write(buf)
            left -= len(buf)
        gen.kill()
        gen.wait()


def sparse(path, virtual, data):
    count = data // CHUNK
    slot = virtual // count
    if data % CHUNK or slot < CHUNK:
        sys.exit("mkimage.py: DATA must be a multiple of 256 KiB and fit VIRTUAL")
    rnd = random.Random(4242)
    with open(path, "wb") as f:
        f.truncate(virtual)
        for i in range(count):
            off = i * slot + rnd.randrange(0, (slot - CHUNK) // ALIGN + 1) * ALIGN
            os.pwrite(f.fileno(), rnd.randbytes(CHUNK), off)


def main(a):
    if len(a) == 4 and a[1] == "dense":
        dense(a[2], int(a[3]))
    elif len(a) == 5 and a[1] == "sparse":
        sparse(a[2], int(a[3]), int(a[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
