/*
 * Go's register-based calling convention (ABIInternal, Go >= 1.17), for the
 * architecture the object is compiled for: bpf2go's -target amd64 / arm64
 * defines __TARGET_ARCH_x86 / __TARGET_ARCH_arm64.
 *
 * The probes name registers only through these macros: GO_ARGn is the n-th
 * integer argument at a function's entry and the n-th integer result at its
 * RET, GO_G the running goroutine's g, GO_ENTRY_SP the stack pointer at a
 * function's entry.
 */
#ifndef GOLENS_GO_ABI_H
#define GOLENS_GO_ABI_H

#include "types.h"

#if defined(__TARGET_ARCH_x86)

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

/* CALL pushed the return address: SP is one word below the caller's frame. */
#define GO_ENTRY_SP(r) ((r)->sp)

#elif defined(__TARGET_ARCH_arm64)

/*
 * On arm64 the kernel's struct pt_regs begins with the UAPI struct
 * user_pt_regs of asm/ptrace.h (x0..x30, sp, pc, pstate), which is ABI; a
 * uprobe program reads only that prefix, so only it is declared.
 */
struct pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

/* Integer arguments and results go in R0..R15, in order. */
#define GO_ARG1(r) ((r)->regs[0])
#define GO_ARG2(r) ((r)->regs[1])
#define GO_ARG3(r) ((r)->regs[2])
#define GO_ARG4(r) ((r)->regs[3])
#define GO_ARG5(r) ((r)->regs[4])
#define GO_ARG6(r) ((r)->regs[5])

/* The running goroutine's g is pinned in R28 (g) in Go code. */
#define GO_G(r) ((r)->regs[28])

/*
 * BL leaves the return address in the link register, so at entry SP is the
 * caller's own; one word lower is where amd64 has it, which keeps depths
 * measured from the stack's top comparable with a caller frame's SP the same
 * way on both (a caller's frame is strictly shallower).
 */
#define GO_ENTRY_SP(r) ((r)->sp - 8)

#else
#error "go_abi.h: build with bpf2go -target amd64 or arm64 (__TARGET_ARCH_x86 / __TARGET_ARCH_arm64)"
#endif

#endif
