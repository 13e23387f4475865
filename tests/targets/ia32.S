/* A 32-bit (ia32) process for the attach tests: prints "ready", then reads stdin until EOF.
 * Plain assembly, static, no libc: built with as --32 and ld -m elf_i386 (binutils only, no
 * gcc-multilib needed). */
	.section .data
msg:	.ascii "ia32 1\nready\n"
	.set msglen, . - msg
	.section .bss
	.lcomm buf, 64
	.section .text
	.globl _start
_start:
	movl $4, %eax		/* write(1, msg, msglen) */
	movl $1, %ebx
	movl $msg, %ecx
	movl $msglen, %edx
	int $0x80
1:	movl $3, %eax		/* read(0, buf, 64) until EOF */
	movl $0, %ebx
	movl $buf, %ecx
	movl $64, %edx
	int $0x80
	cmpl $0, %eax
	jg 1b
	movl $1, %eax		/* exit(0) */
	xorl %ebx, %ebx
	int $0x80
