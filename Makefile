# golens — see README.md. Everything CI runs is `make test` (via .ci/run).
GO ?= go
BIN := bin/golens

.PHONY: all build generate generate-check test unit e2e deps fuzz bench demo lint clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/golens

# Regenerates the eBPF objects (needs clang, llvm and libbpf-dev) and the
# fallback offsets table (downloads the Go toolchains it reads).
generate:
	$(GO) generate ./probes/...

# Fails when the committed eBPF objects (amd64 and arm64, from the same
# sources: the gen.go files pass -target amd64,arm64) differ from what the C
# sources give.
generate-check:
	$(GO) generate ./probes/contract/ ./probes/nethttp/ ./probes/goruntime/ ./probes/grpc/
	git diff --exit-code -- probes/ && test -z "$$(git status --porcelain -- probes/)" || (echo "generated eBPF objects are stale: run 'make generate' and commit" >&2; exit 1)

lint:
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo "gofmt: files above need formatting" >&2 && exit 1)
	$(GO) vet ./...
	# linux/arm64 is supported too: it must build and vet (its own eBPF
	# objects, register ABI and disassembler).
	GOOS=linux GOARCH=arm64 $(GO) build ./...
	GOOS=linux GOARCH=arm64 $(GO) vet ./...

UNIT = $$($(GO) list ./... | grep -v /test/)

unit:
	$(GO) test -count=1 -race $(UNIT)

# End-to-end tests need root (or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH).
e2e:
	$(GO) test -count=1 -timeout 20m ./test/...

# Installs the tools the tests use (root with apt-get) or fails naming them.
deps:
	./scripts/test-deps.sh

# Short coverage-guided runs of every fuzz target (package:Name), beyond the
# seed corpora every `go test` runs anyway. The fuzzing coordinator of Go
# 1.26 can fail a run at its -fuzztime deadline with a bare "context deadline
# exceeded" and no failing input (go.dev/issue/75804, fixed in Go 1.27), so
# the fuzz runs use Go 1.27 (fetched by the go command like any toolchain).
FUZZ_TIME ?= 10s
FUZZ_GO ?= GOTOOLCHAIN=go1.27.3 $(GO)
FUZZ := probes/nethttp:FuzzDecode probes/grpc:FuzzDecode probes/goruntime:FuzzDecode \
	probes:FuzzString probes/event:FuzzValidUTF8 otlp:FuzzOTLPEncode sampler:FuzzParse \
	cmd/golens:FuzzConfigFile metrics:FuzzNormalizePath probes/inspect:FuzzOpen
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz $$t ($(FUZZ_TIME))"; \
		$(FUZZ_GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZ_TIME) "./$${t%%:*}"; \
	done

# The README's test command. CI=true unless set: a test whose tool or kernel
# feature is missing fails instead of skipping, so a green run tested all
# it claims. Unit packages run under the race detector.
test: deps lint
	# -p 1: the end-to-end packages measure time windows (attach within 2 s,
	# release within 3 s); they must not share the 2 cores with the deploy
	# tests building helm and Jaeger on a cold machine.
	CI=$${CI:-true} $(GO) test -p 1 -count=1 -race -timeout 20m $(UNIT)
	CI=$${CI:-true} $(GO) test -p 1 -count=1 -timeout 28m ./test/...
	# The span-model candidates agree on the wire (a module of its own: pdata).
	cd test/bench/spanmodel && $(GO) test -count=1 .
	$(MAKE) fuzz

bench:
	# The span-model candidates (issue 15): agent CPU per span from a
	# decoded event to OTLP bytes, golens' span.Span against pdata. First:
	# the bench below exits non-zero when it misses a goal.
	cd test/bench/spanmodel && $(GO) test -run '^$$' -bench SpanModel -benchtime 2s -count 3 .
	$(GO) run ./test/bench

demo:
	./scripts/demo.sh

# Installs golens for systemd (scripts/install.sh): binary, unit, environment
# file, example config. PREFIX (/usr/local) and DESTDIR are respected; nothing
# is enabled or started.
.PHONY: install image
install:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" GO="$(GO)" ./scripts/install.sh

# The container image, built without Docker (scripts/image, its own module):
# bin/golens-image.tar, tagged golens:<version>, for `docker load`, `ctr
# images import` or `kind load image-archive`; and
# bin/golens-image-multiarch.tar, the same tag as one OCI image index over
# linux/amd64 and linux/arm64, for `skopeo copy --all oci-archive:... docker://REGISTRY/golens:<version>`.
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/golens-static ./cmd/golens
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags='-s -w' -o bin/golens-static-arm64 ./cmd/golens
	cd scripts/image && $(GO) run . build --binary ../../bin/golens-static --out ../../bin/golens-image.tar
	cd scripts/image && $(GO) run . index --binary amd64=../../bin/golens-static --binary arm64=../../bin/golens-static-arm64 --out ../../bin/golens-image-multiarch.tar

clean:
	rm -rf bin
