// Package contract holds what the eBPF programs and Go must agree on,
// generated from bpf/include/events.h by bpf2go: the kind of each event in
// the ring buffer and the slots of the shared stats array. Change them in
// the C header and run make generate; no value is written twice.
package contract

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include -I/usr/include/x86_64-linux-gnu" -target amd64,arm64 -type event_kind -type stat_slot Kernel contract.c
