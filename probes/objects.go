package probes

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/golens/golens/probes/inspect"
)

// objects are the probe families' programs loaded into the kernel, shared
// by every target whose constants are the same: the constants are all a
// loaded object knows of its target (offsets and switches read from the
// binary, addresses in it, the manager's features), and its maps are the
// manager's shared ones or per-CPU scratch, so the processes of one binary
// file (a non-PIE one, or a PIE one loaded at the same address) run the
// same programs, each through its own uprobe links, which carry the pid.
// A replica's attach then costs its links, not a load and a verifier run.
type objects struct {
	mu    sync.Mutex // held while loading, so two targets never load one key twice
	byKey map[string]*loaded
	loads int // objects loaded into the kernel since start
}

// loaded is one object in the kernel and how many targets use it.
type loaded struct {
	coll *ebpf.Collection
	key  string
	refs int // under objects.mu
}

// objectKey names what a loaded object depends on: the family, its
// constants, the programs that will be attached (which hooks resolved)
// and how they attach.
func objectKey(spec string, consts map[string]any, points []point, multi bool) string {
	names := make([]string, 0, len(consts))
	for k := range consts {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%t", spec, multi)
	for _, k := range names {
		fmt.Fprintf(&b, "\x00%s=%T:%v", k, consts[k], consts[k])
	}
	progs := make(map[string]bool)
	for _, p := range points {
		progs[p.prog] = true
	}
	names = names[:0]
	for p := range progs {
		names = append(names, p)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "\x00programs=%s", strings.Join(names, ","))
	return b.String()
}

// get returns the object of key, loading it with load when no target
// holds one; the caller owns one reference (see put).
func (o *objects) get(key string, load func() (*ebpf.Collection, error)) (*loaded, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l := o.byKey[key]; l != nil {
		l.refs++
		return l, nil
	}
	coll, err := load()
	if err != nil {
		return nil, err
	}
	if o.byKey == nil {
		o.byKey = make(map[string]*loaded)
	}
	l := &loaded{coll: coll, key: key, refs: 1}
	o.byKey[key] = l
	o.loads++
	return l, nil
}

// put gives back one reference; the last one closes the object.
func (o *objects) put(l *loaded) {
	o.mu.Lock()
	defer o.mu.Unlock()
	l.refs--
	if l.refs > 0 {
		return
	}
	if o.byKey[l.key] == l {
		delete(o.byKey, l.key)
	}
	l.coll.Close()
}

// count returns the objects in the kernel and those loaded since start.
func (o *objects) count() (live, loads int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.byKey), o.loads
}

// resolution is what planSpec found for one family in one binary file
// at one load bias.
type resolution struct {
	consts  map[string]any // read only once cached
	points  []point
	skipped []string
	err     error
}

// resolutions remember, per binary file (by device, inode, size and
// times, so a file replaced is resolved again), load bias and family,
// where the programs go and their constants: reading them from the
// symbol table, DWARF and code costs more than a replica's links.
type resolutions struct {
	mu    sync.Mutex
	byKey map[string]*resolution
}

// resolutionsMax bounds the cache; past it, it starts afresh.
const resolutionsMax = 1024

func (rs *resolutions) get(s Spec, bin *inspect.Binary, im *image, features map[string]bool) resolution {
	resolve := func(s Spec, bin *inspect.Binary, im *image) (map[string]any, []point, []string, error) {
		return planSpec(s, bin, im, features)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(bin.File().Fd()), &st); err != nil {
		c, p, sk, err := resolve(s, bin, im)
		return resolution{c, p, sk, err}
	}
	key := fmt.Sprintf("%d:%d:%d:%d.%d:%d.%d\x00%s\x00%d:%t", st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec, s.Name, im.bias, im.biasErr != nil)
	rs.mu.Lock()
	r := rs.byKey[key]
	rs.mu.Unlock()
	if r != nil {
		return *r
	}
	c, p, sk, err := resolve(s, bin, im)
	r = &resolution{c, p, sk, err}
	rs.mu.Lock()
	if rs.byKey == nil || len(rs.byKey) >= resolutionsMax {
		rs.byKey = make(map[string]*resolution)
	}
	rs.byKey[key] = r
	rs.mu.Unlock()
	return *r
}
