package nethttp

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include -I/usr/include/x86_64-linux-gnu" -target amd64,arm64 -type http_server_event -type http_client_event -type span_context bpf nethttp.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../bpf/include -I/usr/include/x86_64-linux-gnu" -target amd64,arm64 inject inject.c
