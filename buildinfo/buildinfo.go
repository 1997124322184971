// Package buildinfo says which golens this is.
package buildinfo

import "runtime/debug"

// release is the version of this source tree; a release build may set it
// with -ldflags "-X github.com/golens/golens/buildinfo.release=...". The
// Helm chart's appVersion and the image tag follow it.
var release = "0.1.0-dev"

// Version is the one golens version, stamped on spans, resources (traces
// and metrics alike), the exporter's user agent and --version: the module's
// version when golens was built as a module (go install ...@v1.2.3), else
// release.
var Version = version()

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path == "github.com/golens/golens" &&
		bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return release
}
