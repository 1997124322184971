#!/usr/bin/env bash
# Runs golens against a demo Go service: builds both, starts the service,
# attaches the agent (spans to the console), sends some traffic, prints the
# spans and the go_app_ metrics, and cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "demo: golens needs root (or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH); try: sudo make demo" >&2
	exit 1
fi

work=$(mktemp -d)
cleanup() {
	[ -n "${agent:-}" ] && kill -TERM "$agent" 2>/dev/null && wait "$agent" 2>/dev/null || true
	[ -n "${app:-}" ] && kill -TERM "$app" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building golens and the demo service"
go build -o "$work/golens" ./cmd/golens
(cd test/apps/httpserver && go build -o "$work/demo-service" .)

echo "== starting the demo service (an ordinary net/http program, not modified)"
OTEL_SERVICE_NAME=demo-service GODEBUG=httpmuxgo121=0 "$work/demo-service" -addr 127.0.0.1:18080 >"$work/app.log" 2>&1 &
app=$!
for _ in $(seq 50); do grep -q "listening on" "$work/app.log" && break; sleep 0.1; done

echo "== attaching golens to pid $app"
"$work/golens" --pid "$app" --exporter console --metrics-addr 127.0.0.1:19464 >"$work/spans.txt" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 100); do
	curl -fs http://127.0.0.1:19464/readyz >/dev/null 2>&1 && break
	kill -0 "$agent" 2>/dev/null || { cat "$work/agent.log"; exit 1; }
	sleep 0.1
done
cat "$work/agent.log"

echo "== sending traffic"
curl -fs http://127.0.0.1:18080/hello >/dev/null
curl -fs -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" http://127.0.0.1:18080/echo/42 >/dev/null
curl -s -o /dev/null http://127.0.0.1:18080/status/503
curl -s -o /dev/null -X POST http://127.0.0.1:18080/status/404
curl -fs "http://127.0.0.1:18080/sleep?ms=50" >/dev/null
sleep 3.5 # spans wait up to 1 s for a caller on this node, then the 1 s export batch

echo "== spans (the second one continues the trace of the traceparent sent)"
cat "$work/spans.txt"
echo
echo "== metrics (http://127.0.0.1:19464/metrics)"
curl -fs http://127.0.0.1:19464/metrics | grep -E '^(go_app_http_server_requests_total|golens_probe_hits_total|golens_spans_exported_total)'
