/* A guest that writes, for tests that need a guest's own I/O: a boot
 * sector SeaBIOS runs from the first disk.  It writes 32 KiB of 0x5a at a
 * time with the BIOS's extended write (int 13h, AH=43h), which goes
 * through the disk's device (virtio-blk, say), so QEMU's statistics and
 * latency histograms of that device count every write.  It covers the
 * 16 MiB from LBA 2048 (1 MiB) and starts over, forever.  After its first
 * round its writes change no byte: a copy of the disk taken at any moment
 * after that equals the disk.
 *
 * Built with as --32 and ld --oformat binary (Makefile): 512 bytes, the
 * boot signature last. */
    .code16
    .globl _start
_start:
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7c00, %sp
    sti
    mov %dl, drive              /* the BIOS says which disk it booted */
    mov $0x8000, %di            /* the buffer: 0x8000..0xffff, all 0x5a */
    mov $0x8000, %cx
    mov $0x5a, %al
    cld
    rep stosb
again:
    mov $dap, %si
    mov drive, %dl
    mov $0x4300, %ax            /* extended write, no verify */
    int $0x13
    addw $64, lba               /* the next 64 sectors, wrapping at the end */
    cmpw $(2048 + 32768), lba
    jb again
    movw $2048, lba
    jmp again

drive:
    .byte 0
    .balign 4
dap:                            /* the disk address packet */
    .byte 0x10, 0
    .word 64                    /* sectors */
    .word 0x8000, 0             /* buffer offset, segment */
lba:
    .quad 2048

    .org 510
    .byte 0x55, 0xaa
