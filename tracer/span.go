// Package tracer turns probe events into spans and exports them.
package tracer

import "github.com/golens/golens/span"

// Scope is the instrumentation scope of the spans golens builds.
var Scope = &span.Scope{Name: "github.com/golens/golens", Version: Version}

// Version is the golens release stamped on spans and resources.
var Version = "0.1.0-dev"
