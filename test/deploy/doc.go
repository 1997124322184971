// Package deploy tests golens' deployment artifacts against the real tools:
// the systemd unit with systemd-analyze and the install script, the
// Kubernetes manifests and the Helm chart with helm (built from the Go module
// proxy), the container image by building it and running the binary it
// holds, and the Collector configuration with a real Collector (Jaeger v2).
//
// Tools built from the module proxy are cached under
// $HOME/.cache/golens-test, so only the first run pays for them. A tool that
// is missing fails the test in CI (CI set) and skips it elsewhere, saying why.
package deploy
