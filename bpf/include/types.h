/* Kernel UAPI types and libbpf helpers, without vmlinux.h: uprobe programs
 * only touch ABI-stable layouts (pt_regs, map and helper definitions). */
#ifndef GOLENS_TYPES_H
#define GOLENS_TYPES_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#endif
