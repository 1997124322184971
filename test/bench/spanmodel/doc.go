// Package spanmodel measures the span-model candidates of issue 15 side by
// side: golens' own (span.Span, encoded by otlp.TraceEncoder) and the
// Collector's pdata (ptrace), each from a decoded event to OTLP protobuf
// bytes. It is its own module so that pdata and the versions it pulls in
// stay out of the agent's build; `make bench` runs it.
package spanmodel
