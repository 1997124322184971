// Package buildinfo says which golens this is.
package buildinfo

// Version is the golens release stamped on spans, resources and the
// exporter's user agent; the Helm chart's appVersion and the image tag
// follow it. A release build may set it with
// -ldflags "-X github.com/golens/golens/buildinfo.Version=...".
var Version = "0.1.0-dev"
