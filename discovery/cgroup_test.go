package discovery

import (
	"os"
	"testing"
)

func TestUnitsOf(t *testing.T) {
	const (
		pod = "kubepods-besteffort-pod5f0e9d3c_7b8a_4c1e_9f2d_1a2b3c4d5e6f"
		cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	for _, tc := range []struct {
		name, cgroup string
		want         Units
	}{
		{"v2 service", "0::/system.slice/nginx.service\n", Units{System: "nginx.service"}},
		{"v2 templated service", "0::/system.slice/system-getty.slice/getty@tty1.service\n", Units{System: "getty@tty1.service"}},
		{"v2 delegated subtree", "0::/system.slice/app.service/worker/leaf\n", Units{System: "app.service"}},
		{"v2 root", "0::/\n", Units{}},
		{"v2 init", "0::/init.scope\n", Units{System: "init.scope"}},
		{"v2 login session", "0::/user.slice/user-1000.slice/session-3.scope\n", Units{System: "session-3.scope"}},
		{"v2 user service", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/api.service\n",
			Units{System: "user@1000.service", User: "api.service"}},
		{"v2 user manager itself", "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
			Units{System: "user@1000.service", User: "init.scope"}},
		{"v2 kubelet systemd driver, containerd",
			"0::/kubepods.slice/kubepods-besteffort.slice/" + pod + ".slice/cri-containerd-" + cid + ".scope\n",
			Units{System: "cri-containerd-" + cid + ".scope"}},
		{"v2 kubelet systemd driver, CRI-O",
			"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice/crio-" + cid + ".scope\n",
			Units{System: "crio-" + cid + ".scope"}},
		{"v2 docker systemd driver", "0::/system.slice/docker-" + cid + ".scope\n", Units{System: "docker-" + cid + ".scope"}},
		{"v2 kubelet cgroupfs driver", "0::/kubepods/besteffort/pod5f0e9d3c-7b8a-4c1e-9f2d-1a2b3c4d5e6f/" + cid + "\n", Units{}},
		{"v2 docker cgroupfs driver", "0::/docker/" + cid + "\n", Units{}},
		{"v2 inside a cgroup namespace", "0::/\n", Units{}},
		{"v1 systemd", `12:pids:/system.slice/nginx.service
11:memory:/system.slice/nginx.service
10:cpu,cpuacct:/system.slice/nginx.service
4:devices:/system.slice/nginx.service
2:freezer:/
1:name=systemd:/system.slice/nginx.service
`, Units{System: "nginx.service"}},
		{"v1 named hierarchy wins over controllers", `5:memory:/system.slice/other.service
1:name=systemd:/system.slice/nginx.service
`, Units{System: "nginx.service"}},
		{"v1 without name=systemd", "4:memory:/system.slice/db.service\n3:cpuset:/\n", Units{System: "db.service"}},
		{"v1 cgroupfs docker", "9:memory:/docker/" + cid + "\n1:name=systemd:/docker/" + cid + "\n", Units{}},
		{"hybrid", `11:memory:/system.slice/nginx.service
1:name=systemd:/system.slice/nginx.service
0::/system.slice/nginx.service
`, Units{System: "nginx.service"}},
		{"hybrid, unified tree empty", `1:name=systemd:/system.slice/nginx.service
0::/
`, Units{System: "nginx.service"}},
		{"hybrid, unified differs (unified wins)", `1:name=systemd:/system.slice/old.service
0::/system.slice/new.service
`, Units{System: "new.service"}},
		{"this machine's shape", `9:name=systemd:/
4:memory:/process_api/f4ef1604b26c86472817858bf6a3dde1
0::/
`, Units{}},
		{"garbage", "nonsense\n::\n", Units{}},
		{"a slice alone is no unit", "0::/system.slice\n", Units{}},
		{"suffix without a name", "0::/.service\n", Units{}},
	} {
		if got := UnitsOf(tc.cgroup); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestUnitsOfPID(t *testing.T) {
	if _, err := UnitsOfPID(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := UnitsOfPID(1 << 30); err == nil {
		t.Error("no error for a pid that cannot exist")
	}
}
