// Package tracer turns probe events into spans and exports them.
package tracer

import (
	"github.com/golens/golens/buildinfo"
	"github.com/golens/golens/span"
)

// Scope is the instrumentation scope of the spans golens builds.
var Scope = &span.Scope{Name: "github.com/golens/golens", Version: buildinfo.Version}
