// Command kubecheck decodes Kubernetes manifests into the API's own Go
// types, refusing any field the type does not have and any value of the
// wrong shape (a quantity, a port, an enum-typed string): what a YAML
// library alone lets through. It knows the kinds golens deploys.
//
//	kubecheck deploy/kubernetes/*.yaml
//	helm template ... | kubecheck -
//
// It has its own module so that k8s.io/api stays out of golens'.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to a new object of its type.
var kinds = map[string]func() any{
	"v1/Namespace":                       func() any { return new(corev1.Namespace) },
	"v1/ServiceAccount":                  func() any { return new(corev1.ServiceAccount) },
	"v1/ConfigMap":                       func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                          func() any { return new(corev1.Secret) },
	"v1/Service":                         func() any { return new(corev1.Service) },
	"apps/v1/DaemonSet":                  func() any { return new(appsv1.DaemonSet) },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return new(networkingv1.NetworkPolicy) },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return new(rbacv1.ClusterRole) },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return new(rbacv1.ClusterRoleBinding) },
	"rbac.authorization.k8s.io/v1/Role":               func() any { return new(rbacv1.Role) },
	"rbac.authorization.k8s.io/v1/RoleBinding":        func() any { return new(rbacv1.RoleBinding) },
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubecheck FILE... (- for stdin)")
		os.Exit(2)
	}
	failed := false
	for _, name := range os.Args[1:] {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			defer f.Close()
			r = f
		}
		if err := check(name, r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// check decodes every document of r strictly.
func check(name string, r io.Reader) error {
	docs := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var errs []error
	for i := 1; ; i++ {
		doc, err := docs.Read()
		if err == io.EOF {
			return errors.Join(errs...)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s document %d: %w", name, i, err))
			continue
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // empty document
		}
		var tm struct {
			metav1.TypeMeta
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(js, &tm); err != nil {
			errs = append(errs, fmt.Errorf("%s document %d: %w", name, i, err))
			continue
		}
		what := fmt.Sprintf("%s: %s %s", name, tm.Kind, tm.Metadata.Name)
		newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown apiVersion/kind %s/%s", what, tm.APIVersion, tm.Kind))
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(newObj()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		fmt.Println("ok", what)
	}
}
