package sampler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Type names a sampling strategy the way Jaeger's strategies file spells it.
type Type string

// The strategy types of Jaeger's strategies file.
const (
	// Probabilistic keeps a root trace with probability Param (0..1).
	Probabilistic Type = "probabilistic"
	// RateLimiting keeps at most Param root traces per second.
	RateLimiting Type = "ratelimiting"
)

// DefaultRate is the traces per second kept per service when there is no
// strategies file.
const DefaultRate = 1000

// JaegerDefaultProbability is the probability Jaeger's file provider uses
// where a file gives none (its default_sampling_probability): for every
// service of a file without default_strategy, and as the operations'
// default probability of a rate-limited service it serves. golens follows
// it so that one file means the same in both.
const JaegerDefaultProbability = 0.001

// Bounds of a strategies file. The file is often one ConfigMap for the
// whole cluster, edited by hand or generated; whatever it holds, the agent
// on each node must stay small, so what it may hold is bounded before it is
// decoded and before anything is built from it.
const (
	// MaxFileBytes is the largest strategies file read (4 MiB: thousands
	// of services with their operations).
	MaxFileBytes = 4 << 20
	// MaxServices is the most service_strategies entries.
	MaxServices = 5000
	// MaxServiceOperations is the most operation strategies one service
	// may end up with, the default strategy's merged in.
	MaxServiceOperations = 1000
	// MaxOperations is the most operation strategies in all, each
	// service's own plus the default's it takes.
	MaxOperations = 50_000
)

// ErrInvalidStrategies is wrapped by every error Parse returns.
var ErrInvalidStrategies = errors.New("invalid sampling strategies")

// Strategy is how one service or operation samples root traces.
type Strategy struct {
	Type Type
	// Param is the probability for Probabilistic, traces per second for
	// RateLimiting.
	Param float64
	// LatencyThreshold marks a span slower than it as critical; zero means
	// the operation's recent p99 (golens extension latency_threshold_ms).
	LatencyThreshold time.Duration
}

// ServiceStrategy is the strategy of one service, with its operations.
type ServiceStrategy struct {
	// Service is empty for the default strategy.
	Service string
	Strategy
	// Operations holds per-operation strategies, the default strategy's
	// merged in as Jaeger does (the service's own win). An operation whose
	// LatencyThreshold is zero uses the service's.
	Operations map[string]Strategy
	// SLAP95 overrides Config.SLA.P95 (golens extension sla_p95_latency_ms);
	// zero keeps the configured one.
	SLAP95 time.Duration
	// SLAMaxErrorRatio overrides Config.SLA.MaxErrorRatio (golens extension
	// sla_max_error_ratio); zero keeps the configured one.
	SLAMaxErrorRatio float64
}

// Strategies is an immutable, validated set of sampling strategies.
type Strategies struct {
	def      *ServiceStrategy
	services map[string]*ServiceStrategy
	// remoteDef and remote are the operationSampling Jaeger's file
	// provider serves for the default strategy and each service (nil:
	// none), which Handler answers.
	remoteDef *remoteOps
	remote    map[string]*remoteOps
}

// remoteOps is a service's operationSampling as Jaeger's file provider
// builds it: probabilistic operations only, in its order (the service's
// own in file order, then the default's it does not name).
type remoteOps struct {
	defaultProbability float64
	ops                []remoteOp
}

type remoteOp struct {
	name        string
	probability float64
}

// DefaultStrategies is what golens uses without a file: every service
// rate limited at DefaultRate root traces per second.
func DefaultStrategies() *Strategies {
	return &Strategies{
		def:      &ServiceStrategy{Strategy: Strategy{Type: RateLimiting, Param: DefaultRate}},
		services: map[string]*ServiceStrategy{},
	}
}

// Service returns a copy of the strategy that applies to a service: its own,
// or the default one (with Service set to the name asked for).
func (st *Strategies) Service(name string) ServiceStrategy {
	s := *st.lookup(name)
	s.Service = name
	s.Operations = maps.Clone(s.Operations)
	return s
}

// Default returns a copy of the default strategy.
func (st *Strategies) Default() ServiceStrategy {
	s := *st.def
	s.Operations = maps.Clone(s.Operations)
	return s
}

// Services returns the names of the services the file lists, sorted.
func (st *Strategies) Services() []string {
	return slices.Sorted(maps.Keys(st.services))
}

func (st *Strategies) lookup(service string) *ServiceStrategy {
	if s, ok := st.services[service]; ok {
		return s
	}
	return st.def
}

// operation returns the strategy for a span of service/operation and
// whether it is the operation's own (false: the service-level one). An
// operation without its own latency threshold takes the service's.
func (s *ServiceStrategy) operation(op string) (Strategy, bool) {
	if o, ok := s.Operations[op]; ok {
		if o.LatencyThreshold == 0 {
			o.LatencyThreshold = s.LatencyThreshold
		}
		return o, true
	}
	return s.Strategy, false
}

// The JSON shape of Jaeger's strategies file, plus golens extensions that
// Jaeger ignores. Pointers tell a missing field from a zero one.
type (
	fileStrategy struct {
		Type               Type     `json:"type"`
		Param              *float64 `json:"param"`
		LatencyThresholdMS *float64 `json:"latency_threshold_ms"`
	}
	fileOperation struct {
		Operation string `json:"operation"`
		fileStrategy
	}
	fileService struct {
		Service string `json:"service"`
		fileStrategy
		OperationStrategies []fileOperation `json:"operation_strategies"`
		SLAP95LatencyMS     *float64        `json:"sla_p95_latency_ms"`
		SLAMaxErrorRatio    *float64        `json:"sla_max_error_ratio"`
	}
	file struct {
		DefaultStrategy   *fileService  `json:"default_strategy"`
		ServiceStrategies []fileService `json:"service_strategies"`
	}
)

// Load reads and parses a strategies file.
func Load(path string) (*Strategies, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read sampling strategies: %w", err)
	}
	defer f.Close()
	b, err := readBounded(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	st, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// readBounded reads a strategies file of at most MaxFileBytes, without
// reading more than one byte past the bound.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read sampling strategies: %w", err)
	}
	if len(b) > MaxFileBytes {
		return nil, tooLarge()
	}
	return b, nil
}

func tooLarge() error {
	return &invalidError{[]string{fmt.Sprintf("the file is larger than %d MiB", MaxFileBytes>>20)}}
}

// invalidError lists every problem found in a file, on one line.
type invalidError struct{ problems []string }

func (e *invalidError) Error() string {
	return ErrInvalidStrategies.Error() + ": " + strings.Join(e.problems, "; ")
}

func (e *invalidError) Unwrap() error { return ErrInvalidStrategies }

// Parse reads strategies in Jaeger's JSON file format. Unknown fields are
// ignored, as Jaeger does; every other problem is reported, naming the
// service, operation and field.
func Parse(b []byte) (*Strategies, error) {
	if len(b) > MaxFileBytes {
		return nil, tooLarge()
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, &invalidError{[]string{jsonProblem(b, err)}}
	}
	if err := checkBounds(&f); err != nil {
		return nil, err
	}
	var p problems
	st := &Strategies{
		services: make(map[string]*ServiceStrategy, len(f.ServiceStrategies)),
		remote:   make(map[string]*remoteOps),
	}
	if f.DefaultStrategy != nil {
		st.def = p.service("default_strategy", f.DefaultStrategy, nil)
		st.remoteDef = ownRemoteOps(st.def.Strategy, f.DefaultStrategy)
	} else {
		// As Jaeger: a file without default_strategy samples the services
		// it does not list at its default probability.
		st.def = &ServiceStrategy{Strategy: Strategy{Type: Probabilistic, Param: JaegerDefaultProbability}}
	}
	for i := range f.ServiceStrategies {
		fs := &f.ServiceStrategies[i]
		if fs.Service == "" {
			p.add(fmt.Sprintf("service_strategies[%d]", i), "service", "is empty")
			continue
		}
		where := fmt.Sprintf("service %q", fs.Service)
		if _, dup := st.services[fs.Service]; dup {
			p.add(where, "service", "is listed twice")
			continue
		}
		ss := p.service(where, fs, st.def)
		st.services[fs.Service] = ss
		if r := mergeRemoteOps(ss.Strategy, ownRemoteOps(ss.Strategy, fs), st.remoteDef); r != nil {
			st.remote[fs.Service] = r
		}
	}
	if len(p) > 0 {
		return nil, &invalidError{p}
	}
	return st, nil
}

// ownRemoteOps is the operationSampling Jaeger builds from an entry's own
// operation_strategies: nil without any; its default probability the
// entry's own if probabilistic, else JaegerDefaultProbability; rate-limited
// operations left out, which the protocol cannot carry.
func ownRemoteOps(s Strategy, fs *fileService) *remoteOps {
	if len(fs.OperationStrategies) == 0 {
		return nil
	}
	r := &remoteOps{defaultProbability: JaegerDefaultProbability, ops: []remoteOp{}}
	if s.Type == Probabilistic {
		r.defaultProbability = s.Param
	}
	for i := range fs.OperationStrategies {
		if fo := &fs.OperationStrategies[i]; fo.Type == Probabilistic && fo.Param != nil {
			r.ops = append(r.ops, remoteOp{fo.Operation, *fo.Param})
		}
	}
	return r
}

// mergeRemoteOps merges the default strategy's operationSampling into a
// service's as Jaeger does: a service without operations of its own takes
// the default's whole (with its own probability as the default one when
// it is probabilistic, even if it is rate limited otherwise the default's);
// one with its own keeps them first, then the default's operations it does
// not name. A rate-limited operation of the service names nothing here, so
// the default's operation of that name is served.
func mergeRemoteOps(s Strategy, own, def *remoteOps) *remoteOps {
	switch {
	case def == nil:
		return own
	case own == nil:
		r := &remoteOps{defaultProbability: def.defaultProbability, ops: def.ops}
		if s.Type == Probabilistic {
			r.defaultProbability = s.Param
		}
		return r
	}
	named := make(map[string]bool, len(own.ops))
	for _, o := range own.ops {
		named[o.name] = true
	}
	for _, o := range def.ops {
		if !named[o.name] {
			own.ops = append(own.ops, o)
		}
	}
	return own
}

func (st *Strategies) remoteOps(service string) *remoteOps {
	if _, ok := st.services[service]; ok {
		return st.remote[service]
	}
	return st.remoteDef
}

// checkBounds refuses a file that lists more than the agent keeps, before
// anything is built from it. The operation counts are upper bounds (an
// operation both a service and the default name counts twice).
func checkBounds(f *file) error {
	if n := len(f.ServiceStrategies); n > MaxServices {
		return &invalidError{[]string{fmt.Sprintf("%d service_strategies, more than %d", n, MaxServices)}}
	}
	def := 0
	if f.DefaultStrategy != nil {
		def = len(f.DefaultStrategy.OperationStrategies)
	}
	if def > MaxServiceOperations {
		return &invalidError{[]string{fmt.Sprintf("default_strategy: %d operation_strategies, more than %d", def, MaxServiceOperations)}}
	}
	total := def
	for i := range f.ServiceStrategies {
		fs := &f.ServiceStrategies[i]
		n := len(fs.OperationStrategies)
		if n+def > MaxServiceOperations {
			return &invalidError{[]string{fmt.Sprintf("service %q: %d operation_strategies and %d of default_strategy, more than %d",
				fs.Service, n, def, MaxServiceOperations)}}
		}
		total += n + def
	}
	if total > MaxOperations {
		return &invalidError{[]string{fmt.Sprintf("%d operation strategies in all (each service's own and the default's it takes), more than %d",
			total, MaxOperations)}}
	}
	return nil
}

// jsonProblem says where in the file decoding failed.
func jsonProblem(b []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset is just past the byte that broke the syntax.
		return fmt.Sprintf("invalid JSON at %s: %v", position(b, syn.Offset-1), err)
	case errors.As(err, &typ):
		field := "the file"
		if typ.Field != "" {
			// Drop the names of embedded Go structs from the path.
			field = "field " + strings.ReplaceAll(typ.Field, ".fileStrategy", "")
		}
		return fmt.Sprintf("%s near %s: want a JSON %s, got %s", field, position(b, typ.Offset), jsonKind(typ.Type), typ.Value)
	}
	return "invalid JSON: " + err.Error()
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64, reflect.Int32:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "object"
	}
	return t.String()
}

// position turns a byte offset into "line L, column C" (both from 1).
func position(b []byte, off int64) string {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// problems collects validation failures.
type problems []string

func (p *problems) add(where, field, what string) {
	*p = append(*p, fmt.Sprintf("%s: %s %s", where, field, what))
}

// service validates one service_strategies entry (or default_strategy when
// def is nil) and merges in what the default strategy provides.
func (p *problems) service(where string, fs *fileService, def *ServiceStrategy) *ServiceStrategy {
	s := &ServiceStrategy{Service: fs.Service, Strategy: p.strategy(where, &fs.fileStrategy)}
	if fs.SLAP95LatencyMS != nil {
		s.SLAP95 = p.millis(where, "sla_p95_latency_ms", *fs.SLAP95LatencyMS)
	}
	if r := fs.SLAMaxErrorRatio; r != nil {
		if *r <= 0 || *r > 1 {
			p.add(where, "sla_max_error_ratio", fmt.Sprintf("%v is not a ratio in (0, 1]", *r))
		}
		s.SLAMaxErrorRatio = *r
	}
	if def != nil {
		// golens extensions of the default strategy apply to every service
		// that does not set its own.
		if s.LatencyThreshold == 0 {
			s.LatencyThreshold = def.LatencyThreshold
		}
		if s.SLAP95 == 0 {
			s.SLAP95 = def.SLAP95
		}
		if s.SLAMaxErrorRatio == 0 {
			s.SLAMaxErrorRatio = def.SLAMaxErrorRatio
		}
	}
	if len(fs.OperationStrategies) > 0 || (def != nil && len(def.Operations) > 0) {
		s.Operations = make(map[string]Strategy)
	}
	for i := range fs.OperationStrategies {
		fo := &fs.OperationStrategies[i]
		if fo.Operation == "" {
			p.add(fmt.Sprintf("%s operation_strategies[%d]", where, i), "operation", "is empty")
			continue
		}
		owhere := fmt.Sprintf("%s operation %q", where, fo.Operation)
		if _, dup := s.Operations[fo.Operation]; dup {
			p.add(owhere, "operation", "is listed twice")
			continue
		}
		s.Operations[fo.Operation] = p.strategy(owhere, &fo.fileStrategy)
	}
	if def != nil {
		for name, o := range def.Operations {
			if _, own := s.Operations[name]; !own {
				s.Operations[name] = o
			}
		}
	}
	return s
}

func (p *problems) strategy(where string, fs *fileStrategy) Strategy {
	s := Strategy{Type: fs.Type}
	if fs.LatencyThresholdMS != nil {
		s.LatencyThreshold = p.millis(where, "latency_threshold_ms", *fs.LatencyThresholdMS)
	}
	switch fs.Type {
	case Probabilistic, RateLimiting:
	default:
		p.add(where, "type", fmt.Sprintf("%q is unknown (want %q or %q)", fs.Type, Probabilistic, RateLimiting))
		return s
	}
	if fs.Param == nil {
		p.add(where, "param", "is missing")
		return s
	}
	s.Param = *fs.Param
	switch {
	case fs.Type == Probabilistic && (s.Param < 0 || s.Param > 1):
		p.add(where, "param", fmt.Sprintf("%v is not a probability in [0, 1]", s.Param))
	case fs.Type == RateLimiting && s.Param < 0:
		p.add(where, "param", fmt.Sprintf("%v is a negative rate (traces per second)", s.Param))
	}
	return s
}

func (p *problems) millis(where, field string, ms float64) time.Duration {
	if ms <= 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		p.add(where, field, fmt.Sprintf("%v is not a positive number of milliseconds", ms))
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}
