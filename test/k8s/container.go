package k8s

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/golens/golens/test/harness"
)

// ContainerCgroup is the cgroup v2 path (below the hierarchy's root) the
// kubelet's systemd driver and containerd give a BestEffort pod's
// container: kubepods.slice/kubepods-besteffort.slice/
// kubepods-besteffort-pod<uid with _>.slice/cri-containerd-<id>.scope.
func ContainerCgroup(podUID, containerID string) string {
	uid := strings.ReplaceAll(podUID, "-", "_")
	return filepath.Join("kubepods.slice", "kubepods-besteffort.slice",
		"kubepods-besteffort-pod"+uid+".slice", "cri-containerd-"+containerID+".scope")
}

// StartInCgroup runs a target built by harness.BuildApp in the cgroup
// root/rel (created), from its first instruction on, as a runtime starts a
// container's process; it waits for the "listening on" line. cleanup stops
// it and removes the cgroups it created.
func StartInCgroup(root, rel, bin string, env []string) (app *harness.App, cleanup func(), err error) {
	dir := filepath.Join(root, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	rmdirs := func() {
		for d := dir; d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
			if os.Remove(d) != nil {
				return // not empty: another pod's
			}
		}
	}
	fd, err := os.Open(dir)
	if err != nil {
		rmdirs()
		return nil, nil, err
	}
	defer fd.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
	out, err := cmd.StdoutPipe()
	if err != nil {
		rmdirs()
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		rmdirs()
		return nil, nil, fmt.Errorf("start %s in %s: %w", bin, dir, err)
	}
	addr := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		app = &harness.App{Cmd: cmd, Addr: a}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		rmdirs()
		return nil, nil, fmt.Errorf("%s did not report its address", bin)
	}
	return app, func() { app.Stop(); rmdirs() }, nil
}
