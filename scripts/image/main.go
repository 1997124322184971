// Command image builds golens' container image without Docker, and reads it
// back. The image is one layer: the static agent binary at
// /usr/local/bin/golens (its entrypoint) and the CA bundle golens uses to
// verify a Collector's TLS certificate. The tarball is an OCI image layout
// (index.json, blobs/) that also carries Docker's manifest.json, so `docker
// load`, `podman load`, `ctr images import` and `kind load image-archive` all
// take it.
//
//	image build --binary bin/golens-static --out bin/golens-image.tar
//	image index --binary amd64=bin/golens-static --binary arm64=bin/golens-static-arm64 --out bin/golens-image-multiarch.tar
//	image extract --image bin/golens-image.tar --out DIR
//	image extract --image bin/golens-image-multiarch.tar --platform arm64 --out DIR
//
// index writes one OCI image index (a multi-architecture image) over the
// images of several binaries, as an OCI layout without Docker's
// manifest.json (which cannot hold an index): for `skopeo copy --all
// oci-archive:...` to a registry, or `ctr images import --all-platforms`.
// Each architecture's image is the same as build makes of that binary.
//
// It has its own module so that go-containerregistry stays out of golens'.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// binaryPath is where the agent lives in the image.
const binaryPath = "usr/local/bin/golens"

// caPath is where Go's crypto/x509 looks first for the system roots on Linux.
const caPath = "etc/ssl/certs/ca-certificates.crt"

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "index":
		err = index(os.Args[2:])
	case "extract":
		err = extract(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  image build --binary FILE --out FILE.tar [--repo golens] [--version V] [--ca-certs FILE] [--arch amd64]
  image index --binary ARCH=FILE [--binary ARCH=FILE ...] --out FILE.tar [--repo golens] [--version V] [--ca-certs FILE]
  image extract --image FILE.tar --out DIR [--platform ARCH]`)
	os.Exit(2)
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	binary := fs.String("binary", "", "static golens binary to put in the image")
	out := fs.String("out", "", "image tarball to write")
	repo := fs.String("repo", "golens", "image name; the tag is the version")
	version := fs.String("version", "", "tag (default: what `BINARY --version` prints)")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (empty: none)")
	arch := fs.String("arch", "amd64", "the binary's GOARCH")
	fs.Parse(args)
	if *binary == "" || *out == "" {
		return errors.New("build: --binary and --out are required")
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return err
	}
	if *version == "" {
		if *version, err = binaryVersion(*binary); err != nil {
			return err
		}
	}
	tag, err := name.NewTag(*repo + ":" + *version)
	if err != nil {
		return fmt.Errorf("image name: %w", err)
	}
	created, err := creationTime(*binary)
	if err != nil {
		return err
	}
	img, err := makeImage(bin, *arch, *version, *caCerts, created)
	if err != nil {
		return err
	}
	if err := writeArchive(img, tag, *arch, *out); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s)\n", *out, tag.String(), digest)
	return nil
}

// makeImage is the image of one binary: one layer with it and the CA
// bundle (caCerts, none when empty), for linux/arch, created at created.
func makeImage(bin []byte, arch, version, caCerts string, created time.Time) (v1.Image, error) {
	files := []file{{path: binaryPath, mode: 0o755, data: bin}}
	if caCerts != "" {
		ca, err := os.ReadFile(caCerts)
		if err != nil {
			return nil, fmt.Errorf("CA bundle (--ca-certs '' leaves it out): %w", err)
		}
		files = append(files, file{path: caPath, mode: 0o644, data: ca})
	}
	layerTar, err := layerTarball(files, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config = v1.Config{
		Entrypoint:   []string{"/" + binaryPath},
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		User:         "0",
		ExposedPorts: map[string]struct{}{"9464/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "golens",
			"org.opencontainers.image.description": "eBPF spans and metrics for unmodified Go services",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.source":      "https://github.com/golens/golens",
		},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: created}, CreatedBy: "golens scripts/image: " + binaryPath},
	})
	if err != nil {
		return nil, err
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
		return nil, err
	}
	return img, nil
}

// platformBinaries is the repeated --binary ARCH=FILE of index.
type platformBinaries [][2]string

func (p *platformBinaries) String() string { return fmt.Sprint(*p) }

func (p *platformBinaries) Set(v string) error {
	arch, file, ok := strings.Cut(v, "=")
	if !ok || arch == "" || file == "" {
		return fmt.Errorf("--binary %q: want ARCH=FILE", v)
	}
	for _, b := range *p {
		if b[0] == arch {
			return fmt.Errorf("--binary: %s given twice", arch)
		}
	}
	*p = append(*p, [2]string{arch, file})
	return nil
}

func index(args []string) error {
	fs := flag.NewFlagSet("index", flag.ExitOnError)
	var bins platformBinaries
	fs.Var(&bins, "binary", "ARCH=FILE: static golens binary for linux/ARCH (repeat per architecture)")
	out := fs.String("out", "", "image tarball to write")
	repo := fs.String("repo", "golens", "image name; the tag is the version")
	version := fs.String("version", "", "tag (default: what the binary of this machine's architecture prints for --version)")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include (empty: none)")
	fs.Parse(args)
	if len(bins) == 0 || *out == "" {
		return errors.New("index: --binary and --out are required")
	}
	if *version == "" {
		for _, b := range bins {
			if b[0] == runtime.GOARCH {
				v, err := binaryVersion(b[1])
				if err != nil {
					return err
				}
				*version = v
			}
		}
		if *version == "" {
			return fmt.Errorf("index: no %s binary to ask for its version: give --version", runtime.GOARCH)
		}
	}
	tag, err := name.NewTag(*repo + ":" + *version)
	if err != nil {
		return fmt.Errorf("image name: %w", err)
	}
	ii := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range bins {
		bin, err := os.ReadFile(b[1])
		if err != nil {
			return err
		}
		created, err := creationTime(b[1])
		if err != nil {
			return err
		}
		img, err := makeImage(bin, b[0], *version, *caCerts, created)
		if err != nil {
			return err
		}
		ii = mutate.AppendManifests(ii, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: b[0]}},
		})
	}
	dir, err := os.MkdirTemp("", "golens-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.WriteIndex(ii); err != nil {
		return err
	}
	size, err := ii.Size()
	if err != nil {
		return err
	}
	digest, err := ii.Digest()
	if err != nil {
		return err
	}
	err = p.AppendDescriptor(v1.Descriptor{
		MediaType: types.OCIImageIndex,
		Size:      size,
		Digest:    digest,
		Annotations: map[string]string{
			"org.opencontainers.image.ref.name": tag.TagStr(),
			"io.containerd.image.name":          containerdName(tag),
		},
	})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s, %d architectures)\n", *out, tag.String(), digest, len(bins))
	return nil
}

// binaryVersion runs the binary with --version ("golens 0.1.0") and returns
// the version.
func binaryVersion(binary string) (string, error) {
	out, err := exec.Command(binary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", binary, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "golens" {
		return "", fmt.Errorf("%s --version printed %q, want \"golens VERSION\"", binary, out)
	}
	return f[1], nil
}

// creationTime is SOURCE_DATE_EPOCH when set (reproducible builds), else the
// binary's modification time: the same binary gives the same image.
func creationTime(binary string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	st, err := os.Stat(binary)
	if err != nil {
		return time.Time{}, err
	}
	return st.ModTime().UTC().Truncate(time.Second), nil
}

type file struct {
	path string
	mode int64
	data []byte
}

// layerTarball writes files, and the directories above them, as a tar
// stream owned by root, with fixed times.
func layerTarball(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.path); d != "."; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			if dirs[parents[i]] {
				continue
			}
			dirs[parents[i]] = true
			err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: parents[i] + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
			if err != nil {
				return nil, err
			}
		}
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.path, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX})
		if err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dockerManifest is one entry of Docker's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// writeArchive writes img as an OCI image layout, adds Docker's
// manifest.json pointing at the same blobs, and tars it all to out.
func writeArchive(img v1.Image, tag name.Tag, arch, out string) error {
	dir, err := os.MkdirTemp("", "golens-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.WriteImage(img); err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	size, err := img.Size()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	err = p.AppendDescriptor(v1.Descriptor{
		MediaType: mt,
		Size:      size,
		Digest:    digest,
		Annotations: map[string]string{
			// The OCI spec's name for the tag; containerd and Docker read the
			// full reference from io.containerd.image.name.
			"org.opencontainers.image.ref.name": tag.TagStr(),
			"io.containerd.image.name":          containerdName(tag),
		},
		Platform: &v1.Platform{OS: "linux", Architecture: arch},
	})
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	dm := dockerManifest{Config: blobPath(cfgName), RepoTags: []string{tag.String()}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		dm.Layers = append(dm.Layers, blobPath(d))
	}
	b, err := json.Marshal([]dockerManifest{dm})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// containerdName is the reference as containerd (and so the kubelet) spells
// it: "golens:1.0" is docker.io/library/golens:1.0.
func containerdName(tag name.Tag) string {
	reg := tag.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + tag.RepositoryStr() + ":" + tag.TagStr()
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// tarDir writes the regular files under dir to a tar file, in name order,
// with no owner or time, so the same image gives the same bytes.
func tarDir(dir, out string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			f.Close()
			return err
		}
		err = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0)})
		if err == nil {
			_, err = tw.Write(data)
		}
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Summary is what extract reports of an image tarball, as JSON.
type Summary struct {
	RepoTags       []string `json:"repo_tags"`       // Docker's manifest.json
	RefName        string   `json:"ref_name"`        // OCI index annotation
	ContainerdName string   `json:"containerd_name"` // OCI index annotation
	Digest         string   `json:"digest"`          // OCI manifest
	ConfigDigest   string   `json:"config_digest"`
	OS             string   `json:"os"`
	Architecture   string   `json:"architecture"`
	// With --platform: the index's platforms and the digest of the one read.
	Platforms      []string `json:"platforms,omitempty"`
	PlatformDigest string   `json:"platform_digest,omitempty"`
	Entrypoint     []string `json:"entrypoint"`
	User           string   `json:"user"`
	Layers         int      `json:"layers"`
	Files          []string `json:"files"` // regular files, extracted under --out
}

// extract reads the tarball both ways — as Docker's archive and as an OCI
// layout — checks that both name the same config and layers, and unpacks
// the image's filesystem into a directory.
func extract(args []string) error {
	fs := flag.NewFlagSet("extract", flag.ExitOnError)
	image := fs.String("image", "", "image tarball")
	out := fs.String("out", "", "directory to unpack the image's files into")
	platform := fs.String("platform", "", "ARCH: read the tarball as a multi-architecture index (image index) and take linux/ARCH's image")
	fs.Parse(args)
	if *image == "" || *out == "" {
		return errors.New("extract: --image and --out are required")
	}
	var sum Summary

	// Docker's view: manifest.json (an index has none).
	var dockerImg v1.Image
	if *platform == "" {
		dm, err := readDockerManifest(*image)
		if err != nil {
			return err
		}
		sum.RepoTags = dm.RepoTags
		if len(dm.RepoTags) != 1 {
			return fmt.Errorf("manifest.json: want one tag, have %q", dm.RepoTags)
		}
		tag, err := name.NewTag(dm.RepoTags[0])
		if err != nil {
			return err
		}
		if dockerImg, err = tarball.ImageFromPath(*image, &tag); err != nil {
			return fmt.Errorf("read %s as a Docker archive: %w", *image, err)
		}
	}

	// The OCI view: index.json and blobs/.
	dir, err := os.MkdirTemp("", "golens-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untar(*image, dir, nil); err != nil {
		return err
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("read %s as an OCI layout: %w", *image, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	if len(im.Manifests) != 1 {
		return fmt.Errorf("index.json: want one manifest, have %d", len(im.Manifests))
	}
	desc := im.Manifests[0]
	sum.RefName = desc.Annotations["org.opencontainers.image.ref.name"]
	sum.ContainerdName = desc.Annotations["io.containerd.image.name"]
	sum.Digest = desc.Digest.String()
	var ociImg v1.Image
	if *platform == "" {
		if ociImg, err = idx.Image(desc.Digest); err != nil {
			return err
		}
		if err := sameImage(dockerImg, ociImg); err != nil {
			return err
		}
	} else {
		if desc.MediaType != types.OCIImageIndex {
			return fmt.Errorf("index.json: its manifest is a %s, not an image index", desc.MediaType)
		}
		child, err := idx.ImageIndex(desc.Digest)
		if err != nil {
			return err
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range cm.Manifests {
			if m.Platform == nil {
				continue
			}
			sum.Platforms = append(sum.Platforms, m.Platform.String())
			if m.Platform.OS == "linux" && m.Platform.Architecture == *platform {
				if ociImg, err = child.Image(m.Digest); err != nil {
					return err
				}
				sum.PlatformDigest = m.Digest.String()
			}
		}
		if ociImg == nil {
			return fmt.Errorf("the image index has no linux/%s image (it has %q)", *platform, sum.Platforms)
		}
	}

	cf, err := ociImg.ConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := ociImg.ConfigName()
	if err != nil {
		return err
	}
	layers, err := ociImg.Layers()
	if err != nil {
		return err
	}
	sum.ConfigDigest = cfgName.String()
	sum.OS, sum.Architecture = cf.OS, cf.Architecture
	sum.Entrypoint, sum.User = cf.Config.Entrypoint, cf.Config.User
	sum.Layers = len(layers)

	// The filesystem as a container would see it (layers applied in order).
	flat := mutate.Extract(ociImg)
	defer flat.Close()
	if err := unpack(flat, *out, &sum.Files); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(sum)
}

func readDockerManifest(image string) (dockerManifest, error) {
	var raw []byte
	err := untar(image, "", func(name string, r io.Reader) error {
		if name != "manifest.json" {
			return nil
		}
		var err error
		raw, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return dockerManifest{}, err
	}
	var dms []dockerManifest
	if err := json.Unmarshal(raw, &dms); err != nil {
		return dockerManifest{}, fmt.Errorf("manifest.json: %w", err)
	}
	if len(dms) != 1 {
		return dockerManifest{}, fmt.Errorf("manifest.json: want one image, have %d", len(dms))
	}
	return dms[0], nil
}

// sameImage checks that two views of the tarball agree on the config and
// every layer.
func sameImage(a, b v1.Image) error {
	ca, err := a.ConfigName()
	if err != nil {
		return err
	}
	cb, err := b.ConfigName()
	if err != nil {
		return err
	}
	if ca != cb {
		return fmt.Errorf("manifest.json names config %s, index.json %s", ca, cb)
	}
	la, err := a.Layers()
	if err != nil {
		return err
	}
	lb, err := b.Layers()
	if err != nil {
		return err
	}
	if len(la) != len(lb) {
		return fmt.Errorf("manifest.json has %d layers, index.json %d", len(la), len(lb))
	}
	for i := range la {
		da, err := la[i].DiffID()
		if err != nil {
			return err
		}
		db, err := lb[i].DiffID()
		if err != nil {
			return err
		}
		if da != db {
			return fmt.Errorf("layer %d: %s in manifest.json, %s in index.json", i, da, db)
		}
	}
	return nil
}

// untar reads a tar file: into dir when dir is set, else through each.
func untar(file, dir string, each func(name string, r io.Reader) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if each != nil {
			if err := each(h.Name, tr); err != nil {
				return err
			}
			continue
		}
		if err := writeFile(dir, h.Name, 0o644, tr); err != nil {
			return err
		}
	}
}

// unpack writes the regular files and directories of a filesystem tar
// stream under dir, keeping their modes.
func unpack(r io.Reader, dir string, files *[]string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			p, err := within(dir, h.Name)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(dir, h.Name, os.FileMode(h.Mode).Perm(), tr); err != nil {
				return err
			}
			*files = append(*files, path.Clean(h.Name))
		default:
			return fmt.Errorf("%s: unexpected entry type %c in the image", h.Name, h.Typeflag)
		}
	}
}

func writeFile(dir, name string, mode os.FileMode, r io.Reader) error {
	p, err := within(dir, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// within joins name to dir, refusing names that would leave it.
func within(dir, name string) (string, error) {
	dir = filepath.Clean(dir)
	p := filepath.Join(dir, filepath.FromSlash(name))
	if p != dir && !strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return "", fmt.Errorf("%q: outside the image root", name)
	}
	return p, nil
}
