// Package inspecttest builds a small real Go program, a net/http server, for
// tests of package inspect and of the code generated from what inspect reads.
package inspecttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Source is the target program: a net/http server whose handler uses a
// map[string][]string, so that its DWARF describes the HTTP request and
// response structs and the runtime's map implementation.
const Source = `package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"sync"
)

var (
	mu   sync.Mutex
	seen = map[string][]string{}
)

func handle(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	seen[r.URL.Path] = append(seen[r.URL.Path], r.Method)
	n := len(seen[r.URL.Path])
	mu.Unlock()
	w.WriteHeader(http.StatusTeapot)
	fmt.Fprintf(w, "%s %s %d\n", r.Method, r.URL.Path, n)
}

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	http.HandleFunc("/", handle)
	// An HTTP client too, so the client-side types are linked and described.
	if len(os.Args) > 2 {
		resp, err := http.Get(os.Args[2])
		if err == nil {
			fmt.Println(resp.StatusCode)
			resp.Body.Close()
		}
	}
	log.Fatal(http.ListenAndServe(addr, nil))
}
`

// goMod declares the oldest Go the probes support, so that every toolchain
// from there on builds the target as it is.
const goMod = "module example.com/target\n\ngo 1.21\n"

// Options say how Build builds the target.
type Options struct {
	// Toolchain is the GOTOOLCHAIN to build with, such as "go1.22.12"; the go
	// command downloads it if needed. Empty means the go command on PATH
	// as it is ("local").
	Toolchain string
	// Flags are extra go build flags, such as "-ldflags=-s -w" or
	// "-buildmode=pie".
	Flags []string
	// Cgo enables cgo, which "-ldflags=-linkmode=external" needs: the
	// layout an external linker gives is what most binaries in the wild
	// have, since importing any C code makes the go command use one.
	Cgo bool
}

// Build writes the target program into dir, which should be empty, and
// builds it there. It returns the path of the executable.
func Build(dir string, opts Options) (string, error) {
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(Source), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
		return "", err
	}
	exe := filepath.Join(dir, "target")
	args := append([]string{"build", "-o", exe}, opts.Flags...)
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = dir
	toolchain := opts.Toolchain
	if toolchain == "" {
		toolchain = "local"
	}
	cgo := "0"
	if opts.Cgo {
		cgo = "1"
	}
	// The target must not pick up the caller's workspace, cgo or cross
	// compilation settings: it is an amd64 ELF.
	cmd.Env = append(os.Environ(),
		"GOTOOLCHAIN="+toolchain,
		"GOWORK=off",
		"GOFLAGS=-buildvcs=false",
		"CGO_ENABLED="+cgo,
		"GOOS=linux",
		"GOARCH=amd64",
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %v with GOTOOLCHAIN=%s: %w\n%s", args, toolchain, err, out.Bytes())
	}
	return exe, nil
}
