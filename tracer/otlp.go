package tracer

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/golens/golens/probes/event"
)

// Field numbers of the OTLP messages the encoder writes, from
// opentelemetry/proto/{collector/trace,trace,common,resource}/v1.
const (
	// ExportTraceServiceRequest
	fReqResourceSpans = 1

	// ResourceSpans
	fRSResource   = 1
	fRSScopeSpans = 2
	fRSSchemaURL  = 3

	// Resource
	fResAttributes = 1

	// ScopeSpans
	fSSScope     = 1
	fSSSpans     = 2
	fSSSchemaURL = 3

	// InstrumentationScope
	fScopeName       = 1
	fScopeVersion    = 2
	fScopeAttributes = 3

	// Span
	fSpanTraceID           = 1
	fSpanSpanID            = 2
	fSpanTraceState        = 3
	fSpanParentSpanID      = 4
	fSpanName              = 5
	fSpanKind              = 6
	fSpanStart             = 7
	fSpanEnd               = 8
	fSpanAttributes        = 9
	fSpanDroppedAttributes = 10
	fSpanEvents            = 11
	fSpanDroppedEvents     = 12
	fSpanLinks             = 13
	fSpanDroppedLinks      = 14
	fSpanStatus            = 15
	fSpanFlags             = 16

	// Span.Event
	fEventTime              = 1
	fEventName              = 2
	fEventAttributes        = 3
	fEventDroppedAttributes = 4

	// Span.Link
	fLinkTraceID           = 1
	fLinkSpanID            = 2
	fLinkTraceState        = 3
	fLinkAttributes        = 4
	fLinkDroppedAttributes = 5
	fLinkFlags             = 6

	// Status
	fStatusMessage = 2
	fStatusCode    = 3

	// KeyValue, and KeyValueList / ArrayValue whose one field is values = 1
	fKVKey    = 1
	fKVValue  = 2
	fListItem = 1

	// AnyValue
	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5
	fAnyKVList = 6
	fAnyBytes  = 7
)

// OTLP SpanFlags bits above the 8 bits of W3C trace flags: the first says
// the second is meaningful, the second that the parent (or linked) span
// context came from another process. Set as otlptrace's exporter sets them.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// OTLP Status.StatusCode values.
const (
	statusUnset = 0
	statusOK    = 1
	statusError = 2
)

// Room reserved for a length prefix before the body is written, chosen by
// the size a message usually has so that closing it rarely moves the body:
// attributes and events fit in 127 bytes, a span in 16 KiB, a batch's
// ResourceSpans in 256 MiB.
const (
	lenSmall = 1
	lenSpan  = 2
	lenBatch = 4
)

// spanEncoder writes ExportTraceServiceRequest messages straight from SDK
// spans, without building the generated protobuf structs: the buffer and
// the grouping tables are kept and reused from one batch to the next, so a
// steady stream of batches allocates (almost) nothing.
type spanEncoder struct {
	buf []byte

	// Spans grouped by resource, then by scope, as linked lists over
	// indices into these slices (-1 ends a list); cleared per batch.
	resources []resourceGroup
	scopes    []scopeGroup
	next      []int32 // next span of the same scope group
	byPtr     map[*resource.Resource]int32
	byAttrs   map[resourceKey]int32
}

type resourceGroup struct {
	res         *resource.Resource
	first, last int32 // scope groups
}

type scopeGroup struct {
	scope       instrumentation.Scope
	next        int32 // next scope group of the same resource
	first, last int32 // spans
}

// resourceKey tells resources apart as otlptrace does, by their attribute
// set, and also by schema URL since ResourceSpans carries one.
type resourceKey struct {
	attrs  attribute.Distinct
	schema string
}

// encode returns the ExportTraceServiceRequest for spans. The bytes are the
// encoder's own and valid until the next call.
func (e *spanEncoder) encode(spans []sdktrace.ReadOnlySpan) []byte {
	e.group(spans)
	e.buf = e.buf[:0]
	for _, rg := range e.resources {
		rs := e.open(fReqResourceSpans, lenBatch)
		r := e.open(fRSResource, lenSmall)
		for it := rg.res.Iter(); it.Next(); {
			e.keyValue(fResAttributes, it.Attribute())
		}
		e.close(r, lenSmall)
		for g := rg.first; g >= 0; g = e.scopes[g].next {
			sg := &e.scopes[g]
			ss := e.open(fRSScopeSpans, lenBatch)
			e.scope(sg.scope)
			for i := sg.first; i >= 0; i = e.next[i] {
				e.span(spans[i])
			}
			e.string(fSSSchemaURL, sg.scope.SchemaURL)
			e.close(ss, lenBatch)
		}
		e.string(fRSSchemaURL, rg.res.SchemaURL())
		e.close(rs, lenBatch)
	}
	return e.buf
}

// group fills the resource and scope lists for spans, in the order each
// resource and scope first appears.
func (e *spanEncoder) group(spans []sdktrace.ReadOnlySpan) {
	if e.byPtr == nil {
		e.byPtr = make(map[*resource.Resource]int32)
		e.byAttrs = make(map[resourceKey]int32)
	}
	clear(e.byPtr)
	clear(e.byAttrs)
	e.resources = e.resources[:0]
	e.scopes = e.scopes[:0]
	e.next = e.next[:0]

	// Consecutive spans nearly always share resource and scope: remember
	// the last ones and skip the map look-ups for them.
	var (
		lastRes   *resource.Resource
		lastScope instrumentation.Scope
		ri, gi    int32 = -1, -1
	)
	for i, s := range spans {
		e.next = append(e.next, -1)
		if s == nil {
			continue
		}
		res, scope := s.Resource(), s.InstrumentationScope()
		if ri < 0 || res != lastRes {
			ri = e.resourceIndex(res)
			lastRes = res
			gi = -1
		}
		if gi < 0 || !sameScope(scope, lastScope) {
			gi = e.scopeIndex(ri, scope)
			lastScope = scope
		}
		sg := &e.scopes[gi]
		if sg.first < 0 {
			sg.first = int32(i)
		} else {
			e.next[sg.last] = int32(i)
		}
		sg.last = int32(i)
	}
}

// resourceIndex finds the group of res: by pointer first, as the agent
// keeps one *Resource per process, then by what the resource holds.
func (e *spanEncoder) resourceIndex(res *resource.Resource) int32 {
	if ri, ok := e.byPtr[res]; ok {
		return ri
	}
	k := resourceKey{res.Equivalent(), res.SchemaURL()}
	ri, ok := e.byAttrs[k]
	if !ok {
		ri = int32(len(e.resources))
		e.resources = append(e.resources, resourceGroup{res: res, first: -1, last: -1})
		e.byAttrs[k] = ri
	}
	e.byPtr[res] = ri
	return ri
}

func sameScope(a, b instrumentation.Scope) bool {
	return a.Name == b.Name && a.Version == b.Version && a.SchemaURL == b.SchemaURL &&
		a.Attributes.Equivalent() == b.Attributes.Equivalent()
}

// scopeIndex finds the group of scope under resource ri. A resource has
// one scope or a few (one per instrumentation library): a scan beats
// hashing three strings.
func (e *spanEncoder) scopeIndex(ri int32, scope instrumentation.Scope) int32 {
	rg := &e.resources[ri]
	for gi := rg.first; gi >= 0; gi = e.scopes[gi].next {
		if sameScope(e.scopes[gi].scope, scope) {
			return gi
		}
	}
	gi := int32(len(e.scopes))
	e.scopes = append(e.scopes, scopeGroup{scope: scope, next: -1, first: -1, last: -1})
	if rg.first < 0 {
		rg.first = gi
	} else {
		e.scopes[rg.last].next = gi
	}
	rg.last = gi
	return gi
}

func (e *spanEncoder) scope(s instrumentation.Scope) {
	// otlptrace leaves the scope out when it is the zero value.
	if sameScope(s, instrumentation.Scope{}) {
		return
	}
	m := e.open(fSSScope, lenSmall)
	e.string(fScopeName, s.Name)
	e.string(fScopeVersion, s.Version)
	for it := s.Attributes.Iter(); it.Next(); {
		e.keyValue(fScopeAttributes, it.Attribute())
	}
	e.close(m, lenSmall)
}

func (e *spanEncoder) span(s sdktrace.ReadOnlySpan) {
	m := e.open(fSSSpans, lenSpan)
	sc := s.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(fSpanTraceID, tid[:])
	e.bytes(fSpanSpanID, sid[:])
	if ts := sc.TraceState(); ts.Len() > 0 {
		e.string(fSpanTraceState, ts.String())
	}
	parent := s.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		e.bytes(fSpanParentSpanID, psid[:])
	}
	e.string(fSpanName, s.Name())
	e.uint(fSpanKind, uint64(spanKind(s.SpanKind())))
	e.fixed64(fSpanStart, unixNano(s.StartTime()))
	e.fixed64(fSpanEnd, unixNano(s.EndTime()))
	for _, kv := range s.Attributes() {
		e.keyValue(fSpanAttributes, kv)
	}
	e.uint(fSpanDroppedAttributes, clampCount(s.DroppedAttributes()))
	for _, ev := range s.Events() {
		em := e.open(fSpanEvents, lenSmall)
		e.fixed64(fEventTime, unixNano(ev.Time))
		e.string(fEventName, ev.Name)
		for _, kv := range ev.Attributes {
			e.keyValue(fEventAttributes, kv)
		}
		e.uint(fEventDroppedAttributes, clampCount(ev.DroppedAttributeCount))
		e.close(em, lenSmall)
	}
	e.uint(fSpanDroppedEvents, clampCount(s.DroppedEvents()))
	for _, l := range s.Links() {
		e.link(l)
	}
	e.uint(fSpanDroppedLinks, clampCount(s.DroppedLinks()))
	// The status goes out even when unset, as otlptrace sends it.
	st := s.Status()
	sm := e.open(fSpanStatus, lenSmall)
	e.string(fStatusMessage, st.Description)
	e.uint(fStatusCode, statusCode(st.Code))
	e.close(sm, lenSmall)
	e.fixed32(fSpanFlags, spanFlags(sc.TraceFlags(), parent))
	e.close(m, lenSpan)
}

func (e *spanEncoder) link(l sdktrace.Link) {
	m := e.open(fSpanLinks, lenSmall)
	tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
	e.bytes(fLinkTraceID, tid[:])
	e.bytes(fLinkSpanID, sid[:])
	if ts := l.SpanContext.TraceState(); ts.Len() > 0 {
		e.string(fLinkTraceState, ts.String())
	}
	for _, kv := range l.Attributes {
		e.keyValue(fLinkAttributes, kv)
	}
	e.uint(fLinkDroppedAttributes, clampCount(l.DroppedAttributeCount))
	e.fixed32(fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
	e.close(m, lenSmall)
}

// spanFlags are the W3C trace flags plus whether ctx (a span's parent, or
// a link's target) is remote.
func spanFlags(tf trace.TraceFlags, ctx trace.SpanContext) uint32 {
	f := uint32(tf) | flagHasIsRemote
	if ctx.IsRemote() {
		f |= flagIsRemote
	}
	return f
}

func spanKind(k trace.SpanKind) trace.SpanKind {
	// OTLP's SpanKind numbers match the API's; anything else is unspecified.
	if k < trace.SpanKindInternal || k > trace.SpanKindConsumer {
		return 0
	}
	return k
}

func statusCode(c codes.Code) uint64 {
	switch c {
	case codes.Ok:
		return statusOK
	case codes.Error:
		return statusError
	}
	return statusUnset
}

func unixNano(t time.Time) uint64 { return uint64(max(0, t.UnixNano())) }

func clampCount(n int) uint64 { return uint64(min(max(n, 0), math.MaxUint32)) }

// keyValue writes one KeyValue as field num.
func (e *spanEncoder) keyValue(num protowire.Number, kv attribute.KeyValue) {
	if e.scalarKeyValue(num, kv) {
		return
	}
	m := e.open(num, lenSmall)
	e.string(fKVKey, string(kv.Key))
	e.value(fKVValue, kv.Value)
	e.close(m, lenSmall)
}

// scalarKeyValue writes kv when its value is a single string, number or
// bool, whose sizes are known up front: the common case, without
// back-patching lengths. It reports whether it did.
func (e *spanEncoder) scalarKeyValue(num protowire.Number, kv attribute.KeyValue) bool {
	var (
		inner int    // the AnyValue's one field, tag included
		str   string // the value when a string, made valid as anyString would
	)
	switch kv.Value.Type() {
	case attribute.STRING:
		str = event.ValidUTF8(kv.Value.AsString())
		n := len(str)
		inner = 1 + protowire.SizeVarint(uint64(n)) + n
	case attribute.INT64:
		inner = 1 + protowire.SizeVarint(uint64(kv.Value.AsInt64()))
	case attribute.BOOL:
		inner = 2
	case attribute.FLOAT64:
		inner = 9
	default:
		return false
	}
	key := event.ValidUTF8(string(kv.Key))
	body := 1 + protowire.SizeVarint(uint64(inner)) + inner
	if len(key) > 0 {
		body += 1 + protowire.SizeVarint(uint64(len(key))) + len(key)
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(body))
	e.string(fKVKey, key)
	e.buf = protowire.AppendTag(e.buf, fKVValue, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(inner))
	switch kv.Value.Type() {
	case attribute.STRING:
		e.buf = protowire.AppendTag(e.buf, fAnyString, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, str)
	case attribute.INT64:
		e.anyInt(kv.Value.AsInt64())
	case attribute.BOOL:
		e.buf = protowire.AppendTag(e.buf, fAnyBool, protowire.VarintType)
		e.buf = protowire.AppendVarint(e.buf, protowire.EncodeBool(kv.Value.AsBool()))
	case attribute.FLOAT64:
		e.anyDouble(kv.Value.AsFloat64())
	}
	return true
}

// value writes v as the AnyValue field num. A oneof member is written even
// when it holds its zero value: that is how a reader tells false or 0 from
// no value at all.
func (e *spanEncoder) value(num protowire.Number, v attribute.Value) {
	m := e.open(num, lenSmall)
	switch v.Type() {
	case attribute.BOOL:
		e.anyBool(v.AsBool())
	case attribute.INT64:
		e.anyInt(v.AsInt64())
	case attribute.FLOAT64:
		e.anyDouble(v.AsFloat64())
	case attribute.STRING:
		e.anyString(v.AsString())
	case attribute.BOOLSLICE:
		encodeArray(e, v.AsBoolSlice(), e.anyBool)
	case attribute.INT64SLICE:
		encodeArray(e, v.AsInt64Slice(), e.anyInt)
	case attribute.FLOAT64SLICE:
		encodeArray(e, v.AsFloat64Slice(), e.anyDouble)
	case attribute.STRINGSLICE:
		encodeArray(e, v.AsStringSlice(), e.anyString)
	case attribute.BYTESLICE:
		e.buf = protowire.AppendTag(e.buf, fAnyBytes, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, v.AsByteSlice())
	case attribute.SLICE:
		a := e.open(fAnyArray, lenSmall)
		for _, item := range v.AsSlice() {
			e.value(fListItem, item)
		}
		e.close(a, lenSmall)
	case attribute.MAP:
		l := e.open(fAnyKVList, lenSmall)
		for _, kv := range v.AsMap() {
			e.keyValue(fListItem, kv)
		}
		e.close(l, lenSmall)
	case attribute.EMPTY:
		// An AnyValue with nothing set.
	default:
		// A type newer than this encoder: say so rather than drop the key,
		// as otlptrace does.
		e.anyString("INVALID")
	}
	e.close(m, lenSmall)
}

// encodeArray writes an ArrayValue of items, each an AnyValue written by
// put.
func encodeArray[T any](e *spanEncoder, items []T, put func(T)) {
	a := e.open(fAnyArray, lenSmall)
	for _, x := range items {
		item := e.open(fListItem, lenSmall)
		put(x)
		e.close(item, lenSmall)
	}
	e.close(a, lenSmall)
}

func (e *spanEncoder) anyBool(b bool) {
	e.buf = protowire.AppendTag(e.buf, fAnyBool, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, protowire.EncodeBool(b))
}

func (e *spanEncoder) anyInt(n int64) {
	e.buf = protowire.AppendTag(e.buf, fAnyInt, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, uint64(n))
}

func (e *spanEncoder) anyDouble(f float64) {
	e.buf = protowire.AppendTag(e.buf, fAnyDouble, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(f))
}

// Every string goes out as valid UTF-8: a receiver built on protobuf-go
// rejects the whole request for one invalid string field. The decoders
// already made the target's strings valid; this is the last line, cheap
// for the valid (nearly always ASCII) strings it sees.

func (e *spanEncoder) anyString(s string) {
	e.buf = protowire.AppendTag(e.buf, fAnyString, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, event.ValidUTF8(s))
}

// The scalar writers below leave out zero values, as proto3 does for
// fields without presence.

func (e *spanEncoder) string(num protowire.Number, s string) {
	if s == "" {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, event.ValidUTF8(s))
}

func (e *spanEncoder) bytes(num protowire.Number, b []byte) {
	if len(b) == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendBytes(e.buf, b)
}

func (e *spanEncoder) uint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, v)
}

func (e *spanEncoder) fixed64(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, v)
}

func (e *spanEncoder) fixed32(num protowire.Number, v uint32) {
	if v == 0 {
		return
	}
	e.buf = protowire.AppendTag(e.buf, num, protowire.Fixed32Type)
	e.buf = protowire.AppendFixed32(e.buf, v)
}

// open starts the embedded message (or packed bytes) field num, leaving
// width bytes for its length, and returns where its body starts.
func (e *spanEncoder) open(num protowire.Number, width int) int {
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	for range width {
		e.buf = append(e.buf, 0)
	}
	return len(e.buf)
}

// close writes the length of the field that open(…, width) started at
// start. A body whose length needs more or fewer bytes than were left is
// moved, so the prefix is always the shortest varint, as proto.Marshal
// writes it.
func (e *spanEncoder) close(start, width int) {
	n := len(e.buf) - start
	w := protowire.SizeVarint(uint64(n))
	if w > width {
		e.buf = append(e.buf, make([]byte, w-width)...)
	}
	if w != width {
		copy(e.buf[start-width+w:], e.buf[start:start+n])
	}
	protowire.AppendVarint(e.buf[:start-width], uint64(n))
	e.buf = e.buf[:start-width+w+n]
}
