package discovery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// serviceAccountDir is where the kubelet mounts a pod's service account
// (a variable for tests).
var serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// K8sClient is the little of the Kubernetes API golens needs (list and
// watch pods, get ReplicaSets), over net/http and encoding/json.
type K8sClient struct {
	server    string // https://host:port, no trailing slash
	http      *http.Client
	token     string // bearer token, when not a client certificate
	tokenFile string // re-read on each request: bound tokens rotate
}

// NewK8sClient configures a client from a kubeconfig file, or, when
// kubeconfig is "", from the pod's service account (in-cluster).
func NewK8sClient(kubeconfig string) (*K8sClient, error) {
	if kubeconfig != "" {
		return k8sFromKubeconfig(kubeconfig)
	}
	return k8sInCluster()
}

func k8sInCluster() (*K8sClient, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("kubernetes: not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); give --kubeconfig")
	}
	ca, err := os.ReadFile(filepath.Join(serviceAccountDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("kubernetes: service account CA: %w", err)
	}
	tokenFile := filepath.Join(serviceAccountDir, "token")
	if _, err := os.ReadFile(tokenFile); err != nil {
		return nil, fmt.Errorf("kubernetes: service account token: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("kubernetes: no certificate in %s", filepath.Join(serviceAccountDir, "ca.crt"))
	}
	return &K8sClient{
		server:    "https://" + net.JoinHostPort(host, port),
		http:      newK8sHTTP(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		tokenFile: tokenFile,
	}, nil
}

// kubeconfig is the part of a kubeconfig file golens reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Clusters []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
			TLSServerName            string `yaml:"tls-server-name"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token                 string `yaml:"token"`
			TokenFile             string `yaml:"tokenFile"`
			ClientCertificate     string `yaml:"client-certificate"`
			ClientCertificateData string `yaml:"client-certificate-data"`
			ClientKey             string `yaml:"client-key"`
			ClientKeyData         string `yaml:"client-key-data"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// k8sFromKubeconfig reads the current context's server, CA and
// credentials (a token, a token file or a client certificate). Relative
// file names are relative to the kubeconfig's directory, as kubectl reads them.
func k8sFromKubeconfig(path string) (*K8sClient, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: no context %q", path, ctxName)
	}
	c := &K8sClient{}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	found = false
	for _, cl := range kc.Clusters {
		if cl.Name != clusterName {
			continue
		}
		found = true
		c.server = strings.TrimSuffix(cl.Cluster.Server, "/")
		tlsConf.InsecureSkipVerify = cl.Cluster.InsecureSkipTLSVerify
		tlsConf.ServerName = cl.Cluster.TLSServerName
		var ca []byte
		switch {
		case cl.Cluster.CertificateAuthorityData != "":
			if ca, err = base64.StdEncoding.DecodeString(cl.Cluster.CertificateAuthorityData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: certificate-authority-data: %w", path, clusterName, err)
			}
		case cl.Cluster.CertificateAuthority != "":
			if ca, err = os.ReadFile(rel(cl.Cluster.CertificateAuthority)); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: %w", path, clusterName, err)
			}
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("kubeconfig %s: cluster %q: no certificate in its CA", path, clusterName)
			}
			tlsConf.RootCAs = pool
		}
	}
	if !found || c.server == "" {
		return nil, fmt.Errorf("kubeconfig %s: no server for cluster %q", path, clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		c.token = u.User.Token
		c.tokenFile = rel(u.User.TokenFile)
		certPEM, keyPEM := []byte(nil), []byte(nil)
		if d := u.User.ClientCertificateData; d != "" {
			if certPEM, err = base64.StdEncoding.DecodeString(d); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client-certificate-data: %w", path, userName, err)
			}
		} else if f := u.User.ClientCertificate; f != "" {
			if certPEM, err = os.ReadFile(rel(f)); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: %w", path, userName, err)
			}
		}
		if d := u.User.ClientKeyData; d != "" {
			if keyPEM, err = base64.StdEncoding.DecodeString(d); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client-key-data: %w", path, userName, err)
			}
		} else if f := u.User.ClientKey; f != "" {
			if keyPEM, err = os.ReadFile(rel(f)); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: %w", path, userName, err)
			}
		}
		if certPEM != nil {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %q: client certificate: %w", path, userName, err)
			}
			tlsConf.Certificates = []tls.Certificate{cert}
		}
	}
	c.http = newK8sHTTP(tlsConf)
	return c, nil
}

func newK8sHTTP(tc *tls.Config) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
	}
	// No overall timeout: watches stream for minutes. Requests carry
	// their own context, and watches a server-side timeoutSeconds.
	return &http.Client{Transport: tr}
}

// K8sStatusError is a non-2xx answer of the API server.
type K8sStatusError struct {
	Code    int
	Message string
}

func (e *K8sStatusError) Error() string {
	return fmt.Sprintf("kubernetes API: %d %s", e.Code, e.Message)
}

// IsGone tells whether err says the resourceVersion asked for is too old
// (410 Gone): the caller lists anew.
func IsGone(err error) bool {
	var se *K8sStatusError
	return errors.As(err, &se) && se.Code == http.StatusGone
}

// get performs a GET of path with query q and returns the response, whose
// body the caller closes; a non-2xx status is a *K8sStatusError.
func (c *K8sClient) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := c.server + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "golens")
	tok := c.token
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("kubernetes token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var st k8sStatus
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return nil, &K8sStatusError{Code: resp.StatusCode, Message: msg}
	}
	return resp, nil
}

// getJSON GETs path and decodes the answer into v.
func (c *K8sClient) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("kubernetes API %s: decode: %w", path, err)
	}
	return nil
}

// k8sStatus is a metav1.Status, as errors and watch ERROR events carry.
type k8sStatus struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

// k8sMeta is the ObjectMeta golens reads.
type k8sMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	UID             string            `json:"uid"`
	ResourceVersion string            `json:"resourceVersion"`
	Labels          map[string]string `json:"labels"`
	OwnerReferences []k8sOwnerRef     `json:"ownerReferences"`
}

type k8sOwnerRef struct {
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	Controller *bool  `json:"controller"`
}

// k8sPod is the part of a Pod golens reads.
type k8sPod struct {
	Metadata k8sMeta `json:"metadata"`
	Spec     struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		ContainerStatuses     []k8sContainerStatus `json:"containerStatuses"`
		InitContainerStatuses []k8sContainerStatus `json:"initContainerStatuses"`
		EphemeralStatuses     []k8sContainerStatus `json:"ephemeralContainerStatuses"`
	} `json:"status"`
}

type k8sContainerStatus struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerID"` // "containerd://<id>"
}

type k8sPodList struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
	} `json:"metadata"`
	Items []k8sPod `json:"items"`
}

type k8sWatchEvent struct {
	Type   string          `json:"type"` // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
	Object json.RawMessage `json:"object"`
}

// listPods lists the pods bound to node.
func (c *K8sClient) listPods(ctx context.Context, node string) (*k8sPodList, error) {
	q := url.Values{}
	q.Set("fieldSelector", "spec.nodeName="+node)
	var l k8sPodList
	if err := c.getJSON(ctx, "/api/v1/pods", q, &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// watchPods opens a watch of node's pods from resourceVersion rv.
func (c *K8sClient) watchPods(ctx context.Context, node, rv string, timeout time.Duration) (io.ReadCloser, error) {
	q := url.Values{}
	q.Set("fieldSelector", "spec.nodeName="+node)
	q.Set("watch", "true")
	q.Set("resourceVersion", rv)
	q.Set("allowWatchBookmarks", "true")
	q.Set("timeoutSeconds", fmt.Sprint(int(timeout.Seconds())))
	resp, err := c.get(ctx, "/api/v1/pods", q)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// controllerAPI is where the API server serves the controllers whose own
// controller golens looks up.
var controllerAPI = map[string]string{
	"ReplicaSet": "/apis/apps/v1/namespaces/%s/replicasets/%s",
	"Job":        "/apis/batch/v1/namespaces/%s/jobs/%s",
}

// controllerOwner returns the controller owner of a ReplicaSet (its
// Deployment) or a Job (its CronJob), or ok false when it has none.
func (c *K8sClient) controllerOwner(ctx context.Context, kind, namespace, name string) (k8sOwnerRef, bool, error) {
	api, ok := controllerAPI[kind]
	if !ok {
		return k8sOwnerRef{}, false, fmt.Errorf("no owner lookup for kind %s", kind)
	}
	var obj struct {
		Metadata k8sMeta `json:"metadata"`
	}
	if err := c.getJSON(ctx, fmt.Sprintf(api, url.PathEscape(namespace), url.PathEscape(name)), nil, &obj); err != nil {
		return k8sOwnerRef{}, false, err
	}
	o, ok := controllerOf(obj.Metadata.OwnerReferences)
	return o, ok, nil
}

// controllerOf picks the managing owner: the one marked controller, else
// the only one.
func controllerOf(refs []k8sOwnerRef) (k8sOwnerRef, bool) {
	for _, r := range refs {
		if r.Controller != nil && *r.Controller {
			return r, true
		}
	}
	if len(refs) == 1 {
		return refs[0], true
	}
	return k8sOwnerRef{}, false
}
