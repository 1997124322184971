package sampler

import (
	"math"
	"sync"
)

// Defaults of PressureConfig.
const (
	DefaultPressureHighWater  = 0.5
	DefaultPressureStep       = 0.1
	DefaultPressureLevels     = 5
	DefaultPressureHysteresis = 0.05
)

// PressureConfig sets the levels of export queue pressure. Level 0 is
// normal; level k (1 ≤ k < Levels) starts when the queue is filled to
// HighWater + (k-1)·Step and keeps a healthy-path span with probability
// 2^-k; level Levels keeps none, leaving the rest of the queue to critical
// spans. A level is left once the queue is Hysteresis below where it
// starts, so that a queue hovering at a mark does not flap.
type PressureConfig struct {
	HighWater  float64 // fraction of the queue where thinning starts (0.5)
	Step       float64 // further fill per level (0.1)
	Levels     int     // the highest level, which sheds every healthy span (5)
	Hysteresis float64 // below a level's start to leave it (0.05)
	// OnChange, when set, is called at every change of level, in order,
	// with the Pressure's lock held (it must not call back into it).
	OnChange func(level, before int)
}

func (c *PressureConfig) defaults() {
	setDefault(&c.HighWater, DefaultPressureHighWater)
	setDefault(&c.Step, DefaultPressureStep)
	setDefault(&c.Levels, DefaultPressureLevels)
	setDefault(&c.Hysteresis, DefaultPressureHysteresis)
}

// Pressure follows how full the export queue is and grades it into
// levels; what a level does to a span is Thin's. It is safe for
// concurrent use.
type Pressure struct {
	cfg   PressureConfig
	mu    sync.Mutex
	level int
}

// NewPressure returns a Pressure at level 0.
func NewPressure(cfg PressureConfig) *Pressure {
	cfg.defaults()
	return &Pressure{cfg: cfg}
}

// Levels is the highest level, the one that sheds every healthy span.
func (p *Pressure) Levels() int { return p.cfg.Levels }

// start is the fill at which level k begins.
func (p *Pressure) start(k int) float64 {
	return p.cfg.HighWater + float64(k-1)*p.cfg.Step
}

// Update sets the level for a queue holding queued of capacity spans and
// returns it with the level before.
func (p *Pressure) Update(queued, capacity int) (level, before int) {
	fill := 1.0
	if capacity > 0 {
		fill = float64(queued) / float64(capacity)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	before = p.level
	up := 0
	if fill >= p.cfg.HighWater {
		up = min(p.cfg.Levels, 1+int(math.Floor((fill-p.cfg.HighWater)/p.cfg.Step+1e-9)))
	}
	if up > p.level {
		p.level = up
	}
	for p.level > up && fill < p.start(p.level)-p.cfg.Hysteresis {
		p.level--
	}
	if p.level != before && p.cfg.OnChange != nil {
		p.cfg.OnChange(p.level, before)
	}
	return p.level, before
}

// Level returns the current level.
func (p *Pressure) Level() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// Factor is what level multiplies a healthy span's sampling probability
// by: 1 at level 0, 2^-level below Levels, 0 at Levels.
func (p *Pressure) Factor(level int) float64 {
	switch {
	case level <= 0:
		return 1
	case level >= p.cfg.Levels:
		return 0
	}
	return math.Ldexp(1, -level)
}

// Thin decides whether a healthy-path span kept so far stays kept when its
// probability is multiplied by factor. base is the threshold it was kept
// at, when known (a probabilistic decision here or an incoming th); the
// decision is then the consistent one (the trace id's randomness against
// the raised threshold, so every span of the trace gets the same) and th
// is the threshold to record in its tracestate instead. Without a known
// base (rate limited, or a parent that recorded no th) the span is kept
// with probability factor, by the same randomness, and th is false: its
// probability stays unknown.
func Thin(id TraceID, base Threshold, known bool, factor float64) (keep bool, th Threshold, record bool) {
	if factor >= 1 {
		return true, base, known
	}
	p := factor
	if known {
		p *= base.Probability()
	}
	t := ThresholdFor(p)
	if known && t < base {
		t = base // rounding never lowers what the span was kept at
	}
	if !t.Keep(id) {
		return false, t, false
	}
	return true, t, known
}
