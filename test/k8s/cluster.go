// Package k8s runs a real kube-apiserver and etcd for the end-to-end tests,
// and plays the kubelet's part the tests need: pods bound to a node, their
// container IDs in the pod status, and processes started in cgroups named
// as the kubelet and containerd name them.
package k8s

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KubeVersion is the kube-apiserver built for the tests.
const KubeVersion = "v1.34.2"

// stagingModules are the k8s.io modules k8s.io/kubernetes replaces with
// its staging directories; a build from the module proxy pins them.
var stagingModules = []string{"api", "apiextensions-apiserver", "apimachinery", "apiserver", "cli-runtime",
	"client-go", "cloud-provider", "cluster-bootstrap", "code-generator", "component-base", "component-helpers",
	"controller-manager", "cri-api", "cri-client", "csi-translation-lib", "dynamic-resource-allocation",
	"endpointslice", "externaljwt", "kms", "kube-aggregator", "kube-controller-manager", "kube-proxy",
	"kube-scheduler", "kubectl", "kubelet", "metrics", "mount-utils", "pod-security-admission",
	"sample-apiserver", "sample-cli-plugin", "sample-controller"}

// CacheDir is where built tools are kept between runs.
func CacheDir() string {
	if d := os.Getenv("GOLENS_TEST_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "golens-test")
}

// APIServerBinary returns the cached kube-apiserver, building it from the
// Go module proxy when missing (about 3.5 minutes on 2 cores). It is linked
// with its version, as a release is: a client that checks the server's
// version (helm's kubeVersion) sees v1.34.2, not v0.0.0-master.
func APIServerBinary() (string, error) {
	// "-r2": built with the version; a cached build without it is not used.
	bin := filepath.Join(CacheDir(), "kube-apiserver-"+KubeVersion+"-r2")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	dir := filepath.Join(CacheDir(), "kas-build")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var mod strings.Builder
	fmt.Fprintf(&mod, "module kasbuild\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n", KubeVersion)
	staging := "v0" + strings.TrimPrefix(KubeVersion, "v1")
	for _, m := range stagingModules {
		fmt.Fprintf(&mod, "replace k8s.io/%s => k8s.io/%s %s\n", m, m, staging)
	}
	files := map[string]string{
		"go.mod":   mod.String(),
		"tools.go": "//go:build tools\n\npackage kasbuild\n\nimport _ \"k8s.io/kubernetes/cmd/kube-apiserver\"\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	major, minor, _ := strings.Cut(strings.TrimPrefix(KubeVersion, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	ldflags := fmt.Sprintf("-X k8s.io/component-base/version.gitVersion=%s -X k8s.io/component-base/version.gitMajor=%s -X k8s.io/component-base/version.gitMinor=%s -X k8s.io/component-base/version.gitTreeState=clean",
		KubeVersion, major, minor)
	for _, args := range [][]string{{"mod", "tidy", "-e"}, {"build", "-ldflags", ldflags, "-o", bin + ".tmp", "k8s.io/kubernetes/cmd/kube-apiserver"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return bin, os.Rename(bin+".tmp", bin)
}

// Cluster is a running etcd and kube-apiserver on loopback.
type Cluster struct {
	URL        string // https://127.0.0.1:PORT
	AdminToken string
	Dir        string
	procs      []*exec.Cmd
	logs       []*bytes.Buffer
	http       *http.Client
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start runs etcd (Debian's etcd-server) and kube-apiserver with a static
// admin token, RBAC, and no ServiceAccount admission (no controller
// manager makes the default service accounts).
func Start(dir string) (*Cluster, error) {
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd not installed (Debian package etcd-server): %w", err)
	}
	kas, err := APIServerBinary()
	if err != nil {
		return nil, err
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	c := &Cluster{URL: fmt.Sprintf("https://127.0.0.1:%d", ports[2]), AdminToken: "golens-e2e-admin", Dir: dir,
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	if err := c.run(etcd, "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL, "--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", ports[1])); err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.AdminToken+",admin,admin,system:masters\n"), 0o600); err != nil {
		c.Stop()
		return nil, err
	}
	saKey := filepath.Join(dir, "sa.key")
	if out, err := exec.Command("openssl", "genrsa", "-out", saKey, "2048").CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("openssl genrsa: %v: %s", err, out)
	}
	if err := c.run(kas, "--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--secure-port", fmt.Sprint(ports[2]),
		"--cert-dir", filepath.Join(dir, "certs"), "--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey, "--service-cluster-ip-range", "10.96.0.0/24",
		"--disable-admission-plugins", "ServiceAccount", "--enable-priority-and-fairness=false"); err != nil {
		c.Stop()
		return nil, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := c.Do("GET", "/readyz", nil, nil); err == nil {
			return c, nil
		} else if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("kube-apiserver not ready: %v\n%s", err, c.Logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (c *Cluster) run(bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return err
	}
	c.procs = append(c.procs, cmd)
	c.logs = append(c.logs, &log)
	return nil
}

// APIServerPID is the running kube-apiserver's process id.
func (c *Cluster) APIServerPID() int { return c.procs[len(c.procs)-1].Process.Pid }

// Logs is the tail of what etcd and kube-apiserver said.
func (c *Cluster) Logs() string {
	var b strings.Builder
	for _, l := range c.logs {
		s := l.String()
		if len(s) > 4000 {
			s = s[len(s)-4000:]
		}
		b.WriteString(s)
	}
	return b.String()
}

// Stop ends kube-apiserver, then etcd.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Process.Kill()
		c.procs[i].Wait()
	}
	c.procs = nil
}

// Do sends a request as the admin; in (if not nil) is sent as JSON, out
// (if not nil) decoded from the answer.
func (c *Cluster) Do(method, path string, in, out any) error {
	return c.DoAs(c.AdminToken, method, path, in, out)
}

// DoAs is Do with another bearer token.
func (c *Cluster) DoAs(token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if method == "PATCH" {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Kubeconfig writes a kubeconfig for token and returns its path. The
// server's certificate is self-signed (kube-apiserver --cert-dir): it is
// its own CA.
func (c *Cluster) Kubeconfig(token string) (string, error) {
	ca := filepath.Join(c.Dir, "certs", "apiserver.crt")
	if _, err := os.Stat(ca); err != nil {
		return "", err
	}
	p := filepath.Join(c.Dir, "kubeconfig-"+fmt.Sprint(time.Now().UnixNano()))
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: %s\n    certificate-authority: %s\ncontexts:\n- name: e2e\n  context: {cluster: e2e, user: u}\ncurrent-context: e2e\nusers:\n- name: u\n  user:\n    token: %s\n", c.URL, ca, token)
	return p, os.WriteFile(p, []byte(kc), 0o600)
}

// ErrNoCgroup2 says no cgroup v2 hierarchy is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 mount")

// Cgroup2Root finds the cgroup v2 mount in /proc/self/mountinfo.
func Cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		f := strings.Fields(pre)
		if len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", ErrNoCgroup2
}

// Kubectl runs Debian's kubectl with kubeconfig and returns its output.
func Kubectl(kubeconfig string, args ...string) (string, error) {
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// ServiceAccountToken asks the TokenRequest API for a token of a service
// account, as the kubelet does for a pod's projected volume.
func (c *Cluster) ServiceAccountToken(namespace, name string) (string, error) {
	var tr struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	err := c.Do("POST", "/api/v1/namespaces/"+namespace+"/serviceaccounts/"+name+"/token",
		map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": map[string]any{"expirationSeconds": 3600}}, &tr)
	if err == nil && tr.Status.Token == "" {
		err = errors.New("TokenRequest: no token")
	}
	return tr.Status.Token, err
}
