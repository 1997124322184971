package goruntime

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include -I/usr/include/x86_64-linux-gnu" -target amd64,arm64 -type gc_pause_event bpf goruntime.c
