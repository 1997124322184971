//go:build !go1.24

package main

import "net/http"

// serveH2C does nothing before Go 1.24: net/http had no h2c of its own.
func serveH2C(*http.Server) {}

// h2cClient is nil before Go 1.24: /hop over HTTP/2 cannot arrive then.
func h2cClient() *http.Client { return nil }
