// Package inspecttest builds small real Go programs, a net/http server and a
// gRPC server and client, for tests of package inspect and of the code
// generated from what inspect reads.
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
	// /call?to=URL: an HTTP client request from inside a handler.
	if to := r.URL.Query().Get("to"); r.URL.Path == "/call" && to != "" {
		resp, err := http.Get(to)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		fmt.Fprintf(w, "%d\n", resp.StatusCode)
		return
	}
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

// GRPCSource is the gRPC target program: a grpc-go server and a client that
// calls it, so that the DWARF describes the server's transport and stream,
// the client connection and stream, and the status a handler returns. It
// uses only APIs every grpc-go release from v1.60 on has (grpc.Dial, not
// grpc.NewClient, which came in v1.63) and the standard health service, so
// no generated code of its own.
const GRPCSource = `package main

import (
	"context"
	"fmt"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// health answers every check with NOT_FOUND, built with status.Error.
type health struct {
	healthpb.UnimplementedHealthServer
}

func (health) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, status.Error(codes.NotFound, "unknown service")
}

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health{})
	go s.Serve(l)
	defer s.Stop()

	conn, err := grpc.Dial(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err))
}
`

// GRPCModule is the module path of grpc-go.
const GRPCModule = "google.golang.org/grpc"

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
	// Experiment is GOEXPERIMENT, such as "noswissmap"; empty for none.
	Experiment string
	// GRPC, when set, makes the target the gRPC program (GRPCSource) built
	// against this grpc-go version, such as "v1.64.1". The other modules
	// are at the versions that grpc-go release requires, the least the go
	// command picks, and the module's go line is raised to grpc-go's.
	GRPC string
	// Arch is the GOARCH to build for: "amd64" (empty) or "arm64".
	Arch string
	// Require lists further module requirements of the gRPC program, as
	// "path@version", such as a newer google.golang.org/genproto/googleapis/rpc.
	Require []string
}

// Build writes the target program into dir, which should be empty, and
// builds it there. It returns the path of the executable.
func Build(dir string, opts Options) (string, error) {
	src := Source
	if opts.GRPC != "" {
		src = GRPCSource
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(goMod), 0o644); err != nil {
		return "", err
	}
	toolchain := opts.Toolchain
	if toolchain == "" {
		toolchain = "local"
	}
	cgo := "0"
	if opts.Cgo {
		cgo = "1"
	}
	// The target must not pick up the caller's workspace, cgo or cross
	// compilation settings: it is a linux/amd64 ELF unless Arch says.
	arch := opts.Arch
	if arch == "" {
		arch = "amd64"
	}
	env := append(os.Environ(),
		"GOTOOLCHAIN="+toolchain,
		"GOWORK=off",
		"GOFLAGS=-buildvcs=false",
		"CGO_ENABLED="+cgo,
		"GOOS=linux",
		"GOARCH="+arch,
		"GOEXPERIMENT="+opts.Experiment,
	)
	goCmd := func(args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %v with GOTOOLCHAIN=%s: %w\n%s", args, toolchain, err, out.Bytes())
		}
		return nil
	}
	if opts.GRPC != "" {
		// go get raises the go line to what the modules need; tidy then
		// records the whole graph they bring.
		if err := goCmd(append([]string{"get", GRPCModule + "@" + opts.GRPC}, opts.Require...)...); err != nil {
			return "", err
		}
		if err := goCmd("mod", "tidy"); err != nil {
			return "", err
		}
	}
	exe := filepath.Join(dir, "target")
	args := append([]string{"build", "-o", exe}, opts.Flags...)
	if err := goCmd(append(args, ".")...); err != nil {
		return "", err
	}
	return exe, nil
}
