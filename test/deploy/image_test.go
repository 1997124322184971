package deploy

import (
	"cmp"
	"debug/elf"
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// imageSummary is what `scripts/image extract` reports.
type imageSummary struct {
	RepoTags       []string `json:"repo_tags"`
	RefName        string   `json:"ref_name"`
	ContainerdName string   `json:"containerd_name"`
	Digest         string   `json:"digest"`
	OS             string   `json:"os"`
	Architecture   string   `json:"architecture"`
	Platforms      []string `json:"platforms"`       // of an image index (--platform)
	PlatformDigest string   `json:"platform_digest"` // the image read from it
	Entrypoint     []string `json:"entrypoint"`
	User           string   `json:"user"`
	Layers         int      `json:"layers"`
	Files          []string `json:"files"`
}

// TestImage builds the image with `make image`, reads the tarball back with
// go-containerregistry both as an OCI layout and as a Docker archive, runs
// the binary unpacked from its layers, and checks that the DaemonSet and the
// chart name the tag it carries.
func TestImage(t *testing.T) {
	root := repoRoot(t)
	run(t, root, nil, "make", "--no-print-directory", "image")
	tarball := filepath.Join(root, "bin/golens-image.tar")

	out := t.TempDir()
	js := run(t, filepath.Join(root, "scripts/image"), nil, "go", "run", ".", "extract", "--image", tarball, "--out", out)
	var sum imageSummary
	if err := json.Unmarshal([]byte(js[strings.Index(js, "{"):]), &sum); err != nil {
		t.Fatalf("extract printed %q: %v", js, err)
	}

	// The binary from the image's layers runs, and says which golens it is.
	bin := filepath.Join(out, "usr/local/bin/golens")
	if m := fileMode(t, bin); m != 0o755 {
		t.Errorf("usr/local/bin/golens: mode %o, want 755", m)
	}
	version := agentVersion(t, bin)
	tag := "golens:" + version
	t.Logf("image %s %s: %s", tag, sum.Digest, strings.Join(sum.Files, ", "))
	if out, _ := runErr("", nil, "ldd", bin); !strings.Contains(out, "not a dynamic executable") && !strings.Contains(out, "statically linked") {
		t.Errorf("the image's golens is not static (the image has no libc):\n%s", out)
	}

	if !slices.Equal(sum.RepoTags, []string{tag}) {
		t.Errorf("manifest.json tags %q, want [%s]", sum.RepoTags, tag)
	}
	if sum.RefName != version || sum.ContainerdName != "docker.io/library/"+tag {
		t.Errorf("index.json names %q / %q, want %q / docker.io/library/%s", sum.RefName, sum.ContainerdName, version, tag)
	}
	if sum.OS != "linux" || sum.Architecture != "amd64" || sum.User != "0" || sum.Layers != 1 {
		t.Errorf("image config: %s/%s user %q, %d layers", sum.OS, sum.Architecture, sum.User, sum.Layers)
	}
	if !slices.Equal(sum.Entrypoint, []string{"/usr/local/bin/golens"}) {
		t.Errorf("entrypoint %q", sum.Entrypoint)
	}
	if !sameSet(sum.Files, []string{"usr/local/bin/golens", "etc/ssl/certs/ca-certificates.crt"}) {
		t.Errorf("files in the image: %q", sum.Files)
	}

	// What deploys it names this tag.
	ds := readFile(t, filepath.Join(root, "deploy/kubernetes/daemonset.yaml"))
	if m := regexp.MustCompile(`(?m)^\s+image:\s*(\S+)`).FindStringSubmatch(ds); m == nil || m[1] != tag {
		t.Errorf("deploy/kubernetes/daemonset.yaml image %q, want %s", m, tag)
	}
	var values struct {
		Image struct {
			Repository string `yaml:"repository"`
			Tag        string `yaml:"tag"`
		} `yaml:"image"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(root, "deploy/helm/golens/values.yaml"))), &values); err != nil {
		t.Fatal(err)
	}
	_, appVersion := chartMeta(t)
	if got := values.Image.Repository + ":" + cmp.Or(values.Image.Tag, appVersion); got != tag {
		t.Errorf("the chart's default image is %s, want %s", got, tag)
	}

	// The same binary and SOURCE_DATE_EPOCH give the same image.
	digest := func() string {
		out := run(t, filepath.Join(root, "scripts/image"), []string{"SOURCE_DATE_EPOCH=1700000000"}, "go", "run", ".", "build",
			"--binary", filepath.Join(root, "bin/golens-static"), "--out", filepath.Join(t.TempDir(), "img.tar"))
		m := regexp.MustCompile(`\((sha256:[0-9a-f]{64})\)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("image build printed no digest: %s", out)
		}
		return m[1]
	}
	if a, b := digest(), digest(); a != b {
		t.Errorf("two builds of one binary gave images %s and %s", a, b)
	}

	// A second reader, independent of go-containerregistry: skopeo reads
	// both formats and checks every blob's digest while copying.
	t.Run("skopeo", func(t *testing.T) {
		skopeo := aptTool(t, "skopeo", "skopeo")
		for _, transport := range []string{"oci-archive", "docker-archive"} {
			var info struct {
				Architecture string            `json:"Architecture"`
				Os           string            `json:"Os"`
				Labels       map[string]string `json:"Labels"`
				Layers       []string          `json:"Layers"`
			}
			js := run(t, "", nil, skopeo, "inspect", transport+":"+tarball)
			if err := json.Unmarshal([]byte(js), &info); err != nil {
				t.Fatalf("skopeo inspect %s: %v\n%s", transport, err, js)
			}
			if info.Os != "linux" || info.Architecture != "amd64" || len(info.Layers) != 1 || info.Labels["org.opencontainers.image.version"] != version {
				t.Errorf("skopeo inspect %s: %+v", transport, info)
			}
			run(t, "", nil, skopeo, "copy", "--quiet", transport+":"+tarball, "dir:"+filepath.Join(t.TempDir(), "copy"))
		}
	})

	// The multi-architecture image: one OCI image index, same tag, whose
	// linux/amd64 image is the one above and whose linux/arm64 image holds
	// the arm64 agent.
	t.Run("multiarch", func(t *testing.T) {
		multi := filepath.Join(root, "bin/golens-image-multiarch.tar")
		for _, arch := range []string{"amd64", "arm64"} {
			out := t.TempDir()
			js := run(t, filepath.Join(root, "scripts/image"), nil, "go", "run", ".", "extract", "--image", multi, "--platform", arch, "--out", out)
			var m imageSummary
			if err := json.Unmarshal([]byte(js[strings.Index(js, "{"):]), &m); err != nil {
				t.Fatalf("extract printed %q: %v", js, err)
			}
			if m.RefName != version || m.ContainerdName != "docker.io/library/"+tag {
				t.Errorf("%s: index.json names %q / %q, want %q / docker.io/library/%s", arch, m.RefName, m.ContainerdName, version, tag)
			}
			if !slices.Equal(m.Platforms, []string{"linux/amd64", "linux/arm64"}) || m.OS != "linux" || m.Architecture != arch || m.Layers != 1 {
				t.Errorf("%s: index of %q, image %s/%s with %d layers", arch, m.Platforms, m.OS, m.Architecture, m.Layers)
			}
			if arch == "amd64" && m.PlatformDigest != sum.Digest {
				t.Errorf("the index's amd64 image is %s, bin/golens-image.tar's %s", m.PlatformDigest, sum.Digest)
			}
			bin := filepath.Join(out, "usr/local/bin/golens")
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
			interp := slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
			f.Close()
			if f.Machine != want || interp {
				t.Errorf("%s image's golens: %v, interpreter %v; want static %v", arch, f.Machine, interp, want)
			}
		}
		// skopeo copies every architecture, checking each blob's digest.
		skopeo := aptTool(t, "skopeo", "skopeo")
		run(t, "", nil, skopeo, "copy", "--quiet", "--all", "oci-archive:"+multi, "dir:"+filepath.Join(t.TempDir(), "copy"))
	})
}
