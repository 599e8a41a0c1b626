package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// kernelMeta is the metapackage that always depends on the current
	// Debian cloud kernel image (linux-image-<abi>-cloud-amd64): a small
	// kernel for virtual machines, with virtio built as modules.
	kernelMeta    = "linux-image-cloud-amd64"
	busyboxPkg    = "busybox-static"
	kernelPkgPfx  = "linux-image-"
	kernelPkgSfx  = "-cloud-amd64"
	cacheStageDir = ".staging"
)

// guestModules are the modules the guest loads, with their dependencies
// (read from each module's .modinfo), when the kernel has them as modules:
// virtio_pci is the transport of virtio-net-pci, virtio_net the driver.
var guestModules = []string{"virtio_pci", "virtio_net"}

// guest is what QEMU boots.
type guest struct {
	Kernel      string // path of vmlinuz
	Initramfs   string // path of the newc archive
	KernelPkg   string // package=version the kernel came from
	BusyboxPkg  string
	KernelRel   string   // uname -r of the guest kernel
	Modules     []string // modules loaded by /init, in order
	BusyboxPath string
}

// pkgRef is one resolved package.
type pkgRef struct{ name, version string }

func (p pkgRef) String() string { return p.name + "=" + p.version }

// cacheDir returns where the guest artefacts are kept: -e2e.cache, or
// $XDG_CACHE_HOME/tapbridge-e2e, or /var/cache/tapbridge-e2e.
func cacheDir() string {
	if *cacheFlag != "" {
		return *cacheFlag
	}
	if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "tapbridge-e2e")
	}
	return "/var/cache/tapbridge-e2e"
}

// prepareGuest fetches (or finds in the cache) the kernel and busybox, and
// builds the initramfs into dir.
func prepareGuest(t *testing.T, rep *report, cache, dir string) *guest {
	t.Helper()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		rep.fatalf(t, "create cache: %v", err)
	}
	a := &apt{t: t, cache: cache}
	kroot, kref, err := a.fetch(resolveKernel)
	if err != nil {
		rep.fatalf(t, "kernel: %v", err)
	}
	broot, bref, err := a.fetch(func() (string, error) { return busyboxPkg, nil })
	if err != nil {
		rep.fatalf(t, "busybox: %v", err)
	}
	g := &guest{KernelPkg: kref.String(), BusyboxPkg: bref.String()}

	rels, err := os.ReadDir(filepath.Join(kroot, "lib", "modules"))
	if err != nil || len(rels) != 1 {
		rep.fatalf(t, "kernel package %s: want one lib/modules/<release>, got %d entries (%v)", kref, len(rels), err)
	}
	g.KernelRel = rels[0].Name()
	g.Kernel = filepath.Join(kroot, "boot", "vmlinuz-"+g.KernelRel)
	if _, err := os.Stat(g.Kernel); err != nil {
		rep.fatalf(t, "kernel package %s: %v", kref, err)
	}
	g.BusyboxPath = filepath.Join(broot, "bin", "busybox")

	mods, err := resolveModules(filepath.Join(kroot, "lib", "modules", g.KernelRel), guestModules)
	if err != nil {
		rep.fatalf(t, "kernel modules: %v", err)
	}
	for _, m := range mods {
		g.Modules = append(g.Modules, m.name)
	}
	g.Initramfs = filepath.Join(dir, "initramfs.cpio")
	if err := writeInitramfs(g.Initramfs, g.BusyboxPath, mods); err != nil {
		rep.fatalf(t, "initramfs: %v", err)
	}
	return g
}

// apt fetches packages into the cache with apt-get download and dpkg-deb -x,
// running apt-get update at most once when the package lists are missing or
// stale.
type apt struct {
	t       *testing.T
	cache   string
	updated bool
}

// fetch resolves a package with name() (which may consult apt-cache) and
// returns the root of its unpacked tree. A cache hit needs no network; when
// apt cannot resolve the package at all (offline, no lists), the newest
// cached version is used.
func (a *apt) fetch(name func() (string, error)) (string, pkgRef, error) {
	for {
		root, ref, err := a.tryFetch(name)
		if err == nil {
			return root, ref, nil
		}
		if a.updated {
			if root, ref, ok := a.newestCached(ref.name); ok {
				a.t.Logf("apt failed (%v); using cached %s", err, ref)
				return root, ref, nil
			}
			return "", ref, err
		}
		a.t.Logf("apt: %v; running apt-get update once", err)
		a.updated = true
		if out, uerr := exec.Command("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			a.t.Logf("apt-get update: %v\n%s", uerr, out)
		}
	}
}

func (a *apt) tryFetch(name func() (string, error)) (string, pkgRef, error) {
	pkg, err := name()
	ref := pkgRef{name: pkg}
	if err != nil {
		return "", ref, err
	}
	out, err := exec.Command("apt-cache", "policy", pkg).Output()
	if err != nil {
		return "", ref, fmt.Errorf("apt-cache policy %s: %w", pkg, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate:"); ok {
			ref.version = strings.TrimSpace(v)
		}
	}
	if ref.version == "" || ref.version == "(none)" {
		return "", ref, fmt.Errorf("apt-cache policy %s: no candidate version", pkg)
	}
	root := filepath.Join(a.cache, cacheName(ref))
	if _, err := os.Stat(root); err == nil {
		a.t.Logf("cache hit: %s", ref)
		return root, ref, nil
	}
	return root, ref, a.download(ref, root)
}

// cacheName is the cache directory of a package version; a complete
// unpacked tree is renamed into place, so its existence means complete.
func cacheName(ref pkgRef) string {
	return ref.name + "_" + strings.NewReplacer(":", "%3a", "/", "_").Replace(ref.version)
}

func (a *apt) download(ref pkgRef, root string) error {
	stage := filepath.Join(a.cache, cacheStageDir)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return err
	}
	removeStale(stage)
	tmp, err := os.MkdirTemp(stage, ref.name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt drops to the _apt user to download: let it write there.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("apt-get", "download", "-q", ref.String())
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w\n%s", ref, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: want one .deb, got %q", ref, debs)
	}
	tree := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], tree).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, out)
	}
	if err := os.Rename(tree, root); err != nil {
		// Another run may have finished the same version first.
		if _, serr := os.Stat(root); serr == nil {
			return nil
		}
		return err
	}
	a.t.Logf("fetched %s into %s", ref, root)
	a.prune(ref)
	return nil
}

// prune removes the cached versions that ref replaces (about 100 MB per
// kernel), so that the cache holds one kernel and one busybox.
func (a *apt) prune(ref pkgRef) {
	ents, err := os.ReadDir(a.cache)
	if err != nil {
		return
	}
	for _, e := range ents {
		name, _, ok := strings.Cut(e.Name(), "_")
		if ok && e.IsDir() && e.Name() != cacheName(ref) && (name == ref.name || isKernelPkg(ref.name) && isKernelPkg(name)) {
			if err := os.RemoveAll(filepath.Join(a.cache, e.Name())); err == nil {
				a.t.Logf("cache: removed %s", e.Name())
			}
		}
	}
}

// removeStale removes what interrupted runs left in the staging directory;
// an hour is far longer than a download takes.
func removeStale(stage string) {
	ents, _ := os.ReadDir(stage)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(stage, e.Name()))
		}
	}
}

// newestCached returns the cached tree of pkg (or, for the kernel, of any
// cloud kernel image) with the newest mtime, which dpkg-deb -x takes from
// the package: the newest build.
func (a *apt) newestCached(pkg string) (string, pkgRef, bool) {
	ents, err := os.ReadDir(a.cache)
	if err != nil {
		return "", pkgRef{}, false
	}
	var best fs.FileInfo
	var ref pkgRef
	for _, e := range ents {
		name, ver, ok := strings.Cut(e.Name(), "_")
		if !ok || !e.IsDir() || !(name == pkg || isKernelPkg(pkg) && isKernelPkg(name)) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if best == nil || fi.ModTime().After(best.ModTime()) {
			best, ref = fi, pkgRef{name: name, version: strings.ReplaceAll(ver, "%3a", ":")}
		}
	}
	if best == nil {
		return "", pkgRef{}, false
	}
	return filepath.Join(a.cache, best.Name()), ref, true
}

// isKernelPkg reports whether a package is a cloud kernel image (or its
// metapackage).
func isKernelPkg(name string) bool {
	return strings.HasPrefix(name, kernelPkgPfx) && strings.HasSuffix(name, kernelPkgSfx)
}

// resolveKernel names the versioned cloud kernel image that the metapackage
// depends on (linux-image-6.1.0-NN-cloud-amd64 on bookworm).
func resolveKernel() (string, error) {
	out, err := exec.Command("apt-cache", "depends", kernelMeta).Output()
	if err != nil {
		return kernelMeta, fmt.Errorf("apt-cache depends %s: %w", kernelMeta, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		dep, ok := strings.CutPrefix(strings.TrimSpace(l), "Depends:")
		dep = strings.Trim(strings.TrimSpace(dep), "<>")
		if ok && strings.HasPrefix(dep, kernelPkgPfx) && strings.HasSuffix(dep, kernelPkgSfx) {
			return dep, nil
		}
	}
	return kernelMeta, fmt.Errorf("apt-cache depends %s: no %s*%s dependency in:\n%s", kernelMeta, kernelPkgPfx, kernelPkgSfx, out)
}

// module is one kernel module to put into the initramfs, uncompressed.
type module struct {
	name string
	data []byte
}

// resolveModules returns the modules named by roots and their dependencies,
// dependencies first, read from the unpacked modules tree modDir
// (lib/modules/<release>). There is no modules.dep in the package (depmod
// writes it at install time), so the dependencies come from each module's
// .modinfo "depends=" entry. A root built into the kernel is left out.
func resolveModules(modDir string, roots []string) ([]module, error) {
	builtin := map[string]bool{}
	if f, err := os.Open(filepath.Join(modDir, "modules.builtin")); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			builtin[modName(s.Text())] = true
		}
		f.Close()
	}
	paths := map[string]string{}
	err := filepath.WalkDir(filepath.Join(modDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			paths[modName(p)] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	var order []module
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] {
			return nil
		}
		seen[name] = true
		p, ok := paths[name]
		if !ok {
			if builtin[name] {
				return nil
			}
			return fmt.Errorf("module %s: neither in %s nor built in", name, modDir)
		}
		data, err := readModule(p)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		deps, err := modDepends(data)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		order = append(order, module{name: name, data: data})
		return nil
	}
	for _, r := range roots {
		if err := visit(modName(r)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName turns a module path or name into the name the kernel uses:
// basename without .ko[.xz|.zst|.gz], dashes as underscores.
func modName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// readModule returns a module uncompressed. Debian's bookworm kernels ship
// plain .ko files; later ones compress them (.ko.xz), and busybox insmod
// loads only plain ones, so decompress here.
func readModule(p string) ([]byte, error) {
	switch {
	case strings.HasSuffix(p, ".ko"):
		return os.ReadFile(p)
	case strings.HasSuffix(p, ".ko.gz"):
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		return io.ReadAll(z)
	case strings.HasSuffix(p, ".ko.xz"):
		return exec.Command("xz", "-dc", p).Output()
	case strings.HasSuffix(p, ".ko.zst"):
		return exec.Command("zstd", "-dcq", p).Output()
	}
	return nil, fmt.Errorf("%s: unknown module compression", p)
}

// modDepends reads the "depends=" entry of a module's .modinfo section.
func modDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for _, kv := range bytes.Split(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for _, d := range strings.Split(string(v), ",") {
				if d != "" {
					deps = append(deps, modName(d))
				}
			}
		}
	}
	return deps, nil
}

// guestApplets are the busybox applets /init and the udhcpc script use.
var guestApplets = []string{
	"cat", "echo", "grep", "insmod", "ip", "ls", "mkdir", "mount", "ping",
	"poweroff", "sed", "sh", "sleep", "tr", "udhcpc", "uname",
}

// initScript is the guest's /init. Its markers (E2E-*) are what the host
// reads back from the serial console; each is printed exactly once per boot.
// If it ever exits, the kernel panics, reboots (panic=-1) and QEMU exits
// (-no-reboot): the host never waits for a guest stuck at the end.
//
// The kernel command line selects what it does after the lease (the kernel
// leaves dotted words to modules, so they are read from /proc/cmdline):
// e2e.peer=IP pings IP instead of the gateway; e2e.mode=serve prints
// E2E-SERVING and stays up (answering pings) until killed; e2e.mode=pingloop
// prints E2E-PINGLOOP and pings the peer every 50 ms for ever, one console
// line per reply ("seq=N"), for the host to time; e2e.mode=move (the guard
// test) pings the gateway (E2E-PING-OK), the bridge's IPv6 link-local
// address e2e.ll6= (E2E-PING6-OK), waits for its lease to be bound, then
// moves to the address e2e.moveto= and pings the gateway again
// (E2E-MOVED-PING-OK or -FAIL). Without them it pings the gateway three
// times and powers off.
const initScript = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp
read up _ </proc/uptime
echo "E2E-BOOT $(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo) uptime=${up}s"
for m in $(cat /etc/modules); do
	insmod "/lib/modules/$m.ko" || echo "E2E-INSMOD-FAIL $m"
done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 60 ]; do
	sleep 1
	i=$((i + 1))
done
mode=
peer=
ll6=
moveto=
for a in $(cat /proc/cmdline); do
	case "$a" in
	e2e.mode=*) mode=${a#e2e.mode=} ;;
	e2e.peer=*) peer=${a#e2e.peer=} ;;
	e2e.ll6=*) ll6=${a#e2e.ll6=} ;;
	e2e.moveto=*) moveto=${a#e2e.moveto=} ;;
	esac
done
ip link set lo up
ip link set eth0 up
echo "E2E-QUEUES $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
if udhcpc -i eth0 -n -q -t 10 -T 3 -s /bin/udhcpc-script; then
	gw=$(cat /tmp/router)
	echo "E2E-LEASE $(cat /tmp/ip)"
	echo "E2E-GATEWAY $gw"
	target=${peer:-$gw}
	case "$mode" in
	serve)
		echo "E2E-SERVING"
		while :; do sleep 3600; done
		;;
	pingloop)
		echo "E2E-PINGLOOP $target"
		ping -i 0.05 "$target"
		;;
	move)
		if ping -c 3 -W 10 "$target"; then
			echo "E2E-PING-OK"
		else
			echo "E2E-PING-FAIL"
		fi
		# The udhcpc script flushed eth0's addresses, its link-local one
		# too: cycling the link makes it again (and DAD passes in 1 s).
		ip link set eth0 down
		ip link set eth0 up
		sleep 3
		if ping -c 2 -W 5 "$ll6%eth0"; then
			echo "E2E-PING6-OK"
		else
			echo "E2E-PING6-FAIL"
		fi
		sleep 3
		ip addr del "$(cat /tmp/ip)/24" dev eth0
		ip addr add "$moveto/24" dev eth0
		ip neigh flush dev eth0
		echo "E2E-MOVED $(ip -4 addr show dev eth0 | sed -n 's/.*inet \([0-9.]*\).*/\1/p' | tr '\n' ' ')"
		if ping -c 3 -W 3 "$target"; then
			echo "E2E-MOVED-PING-OK"
		else
			echo "E2E-MOVED-PING-FAIL"
		fi
		;;
	esac
	if [ "$mode" != move ]; then
		if ping -c 3 -W 10 "$target"; then
			echo "E2E-PING-OK"
		else
			echo "E2E-PING-FAIL"
		fi
	fi
	echo "E2E-GWMAC $(ip neigh show "$gw" dev eth0 | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p')"
else
	echo "E2E-LEASE-FAIL"
fi
read up _ </proc/uptime
echo "E2E-DONE uptime=${up}s"
# e2e_hold=N on the kernel command line (an environment variable of init)
# keeps the guest up N seconds more, for a test that ends it itself.
[ -n "$e2e_hold" ] && sleep "$e2e_hold"
poweroff -f
`

// udhcpcScript applies a lease: udhcpc passes it in the environment
// (busybox networking/udhcp/dhcpc.c fill_envp: ip, mask as a prefix length,
// router).
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		ip route add default via "$r" dev "$interface"
		echo "$r" >/tmp/router
		break
	done
	echo "$ip" >/tmp/ip
	;;
esac
exit 0
`

// writeInitramfs writes the guest's initramfs: busybox and its applet
// links, /init, the udhcpc script, and the modules in load order.
func writeInitramfs(path, busybox string, mods []module) error {
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	w := &newcWriter{w: bw}
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"} {
		w.dir(d)
	}
	// The kernel opens /dev/console on the rootfs for init's stdio before
	// /init runs (init/main.c console_on_rootfs); without it the guest's
	// output is lost.
	w.charDev("dev/console", 5, 1)
	w.exec("bin/busybox", bb)
	for _, a := range slices.Sorted(slices.Values(guestApplets)) {
		w.symlink("bin/"+a, "busybox")
	}
	w.exec("init", []byte(initScript))
	w.exec("bin/udhcpc-script", []byte(udhcpcScript))
	var list strings.Builder
	for _, m := range mods {
		w.file("lib/modules/"+m.name+".ko", m.data)
		list.WriteString(m.name + "\n")
	}
	w.file("etc/modules", []byte(list.String()))
	err = w.close()
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
