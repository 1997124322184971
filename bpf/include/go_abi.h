/* Go's register-based calling convention (ABIInternal, Go >= 1.17) on amd64. */
#ifndef GOLENS_GO_ABI_H
#define GOLENS_GO_ABI_H

#include "types.h"

/*
 * The user-visible register frame handed to a uprobe program on x86-64. This
 * is the UAPI layout of asm/ptrace.h, which is ABI and never changes, so it is
 * declared here rather than pulled from vmlinux.h.
 */
struct pt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

/* Integer arguments, in the order Go assigns them. */
#define GO_ARG1(r) ((r)->ax)
#define GO_ARG2(r) ((r)->bx)
#define GO_ARG3(r) ((r)->cx)
#define GO_ARG4(r) ((r)->di)
#define GO_ARG5(r) ((r)->si)
#define GO_ARG6(r) ((r)->r8)

/* The running goroutine's g is pinned in R14 in ABIInternal code. */
#define GO_G(r) ((r)->r14)

#endif
