//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR Apache-2.0
/*
 * The kernel<->Go contract every probe shares, for bpf2go to emit: the
 * event kinds and stat slots of events.h. This object is never loaded; it
 * exists so the enums get BTF (an enum no symbol uses has none) and Go
 * reads their values from the C instead of copies.
 */
#include "types.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const enum event_kind *golens_event_kind __attribute__((unused));
const enum stat_slot *golens_stat_slot __attribute__((unused));
