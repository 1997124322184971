#!/usr/bin/env bash
# What `make test` needs beyond Go: installs what is missing when it can
# (root with apt-get, as on CI and a fresh Debian machine), else fails with
# the list, so the suite never passes having tested less than it claims.
set -euo pipefail

# command -> Debian package
declare -A pkg=(
	[clang]=clang              # compiles the eBPF C (make generate-check)
	[llvm-strip]=llvm
	[gcc]=gcc                  # cgo targets, -race
	[curl]=curl
	[promtool]=prometheus      # exposition format check
	[prometheus]=prometheus    # a real Prometheus scrapes the agent
	[etcd]=etcd-server         # behind the real kube-apiserver
	[kubectl]=kubectl          # the README's deploy command, run as written
	[openssl]=openssl          # certificates for the TLS tests
	[qemu-system-x86_64]=qemu-system-x86 # boots Debian's kernels (test/kernels)
	[qemu-system-aarch64]=qemu-system-arm # boots Debian's arm64 kernel (test/kernels)
)

missing=()
for c in "${!pkg[@]}"; do
	command -v "$c" >/dev/null || missing+=("${pkg[$c]}")
done
[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
# test/kernels' guests run the static busybox (the busybox package's is not).
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
	echo "make test: missing Debian packages: ${missing[*]}" >&2
	echo "  install them (apt-get install ${missing[*]}) or run as root on Debian/Ubuntu, where make test installs them" >&2
	exit 1
fi
echo "test-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
