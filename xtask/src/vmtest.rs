//! `cargo xtask vmtest`: run the end-to-end suite on a real distribution. A Debian 12 guest
//! (systemd, pure cgroup v2) boots under qemu with software emulation, twice: once the helper is
//! installed with `xtask install --setuid`, once with `xtask install --systemd`, and each time
//! the suite runs there with the CLI used by an ordinary user of the guest.
//!
//! - root file system: `debootstrap --variant=minbase` from the Debian mirror apt uses, plus a
//!   unit that runs the test disk's runner and writes to the second serial port; cached as an
//!   ext4 image under the target directory, keyed by the recipe and the kernel version, built
//!   under a temporary name and renamed (a killed run never leaves half an image);
//! - kernel: Debian's `linux-image-amd64`; virtio and ext4 are modules there, so a small busybox
//!   initramfs (written here as a newc archive) loads them and switches to the root;
//! - test disk: the static release binaries, the e2e test binary, this xtask binary (which does
//!   the install inside, with `--bins`) and `run.sh`;
//! - qemu: `-accel tcg,thread=multi` (this host's /dev/kvm hangs on stock kernels), `-snapshot`
//!   (the cached image is never written), a hard timeout.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{Profile, Workspace, run_checked, step};

#[derive(Args)]
pub struct VmtestArgs {
    /// Which installs to test (repeatable) [default: setuid and systemd]
    #[arg(long = "mode", value_name = "setuid|systemd")]
    modes: Vec<String>,
    /// Hard limit for one boot, test run included, in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    timeout: u64,
    /// Virtual CPUs of the guest.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// Rebuild the cached root image even if one matches.
    #[arg(long)]
    rebuild: bool,
    /// Run only the end-to-end tests whose names contain one of these (as `cargo test` filters
    /// do), to iterate on a failure; CI runs them all.
    #[arg(long = "filter", value_name = "NAME")]
    filters: Vec<String>,
}

const SUITE: &str = "bookworm";
/// python3 is for the limit tests (they allocate and fork with it), as on the host; bubblewrap
/// is Debian's `bwrap`, which the bwrap tests compare ours with (and show failing where
/// `kernel.unprivileged_userns_clone=0`).
const DEBOOTSTRAP_INCLUDE: &str =
    "systemd,systemd-sysv,udev,dbus,iproute2,procps,kmod,python3,bubblewrap";
/// Modules the initramfs loads (with their dependencies, in order): the disks, the root file
/// system, and overlayfs (the e2e log test puts an overlay on /dev in a private mount namespace).
const INITRAMFS_MODULES: [&str; 5] = [
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "overlay",
];
/// Host tools and the Debian packages that provide them.
const HOST_TOOLS: [(&str, &str); 5] = [
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ("/usr/sbin/debootstrap", "debootstrap"),
    ("/usr/sbin/mkfs.ext4", "e2fsprogs"),
    ("/usr/bin/dpkg-deb", "dpkg"),
    ("/usr/bin/apt-get", "apt"),
];

/// The unit in the guest that runs the test disk's runner.
const GUEST_UNIT: &str = "\
[Unit]
Description=nsjail vmtest: run the test disk's runner, report on the second serial port
After=basic.target systemd-user-sessions.service
ConditionPathExists=/dev/vdb

[Service]
Type=exec
ExecStart=/usr/local/sbin/nsjail-vmtest-boot
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
";

/// Mount the test disk, run its runner with the mode from the kernel command line, everything
/// to the second serial port (ttyS1), then power off.
const GUEST_BOOT_SCRIPT: &str = r#"#!/bin/sh
out=/dev/ttyS1
mkdir -p /mnt/vmtest
if mount -o ro /dev/vdb /mnt/vmtest; then
  mode=$(sed -n 's/.*nsjail\.vmtest=\([a-z]*\).*/\1/p' /proc/cmdline)
  /mnt/vmtest/run.sh "$mode" > "$out" 2>&1
  echo "vmtest-exit: $?" > "$out"
else
  echo "vmtest-exit: cannot mount the test disk" > "$out"
fi
sync
systemctl poweroff --no-block
"#;

/// The runner on the test disk: install with the real xtask, run the suite, uninstall.
const RUNNER: &str = r#"#!/bin/sh
set -u
mode=$1
D=/mnt/vmtest
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
echo "vmtest guest: mode=$mode kernel=$(uname -r) cgroup fs=$(stat -fc %T /sys/fs/cgroup) $(systemctl --version | head -n1) state=$(systemctl is-system-running)"
cd /tmp
if ! "$D/xtask" install "--$mode" --bins "$D/bin"; then
  echo "vmtest-result: mode=$mode install failed"
  exit 1
fi
ls -l /usr/local/bin/nsjail /usr/local/libexec/nsjail/nsjail-helper /usr/local/libexec/nsjail/nsjail-helperd
if [ "$mode" = systemd ]; then
  systemctl --no-pager status nsjail-helper.socket | head -n 5
fi
# One test at a time: the guest is emulated (10-20 times slower than the host), and with two
# tests at once on its two CPUs the CPU-time checks measured the other test's load (the kill
# and exit of a sandbox at its limit took up to 50 ms of its CPU). The host runs them in
# parallel.
# The desktop, network and terminal tests need an X server, pasta and tmux, which this minimal
# guest does not have; they run on the host in the same CI run. The bwrap_clients tests run
# Debian's mat2, GNOME's thumbnailer, the portal's icon validator (GTK and its stack) and opam,
# which the guest does not have either; they run on the host. Everything else runs here.
echo "vmtest: not run in the guest (run on the host): desktop:: network:: terminal:: bwrap_clients::"
# The guest is pure cgroup v2: the cgroup v1 placement tests run on the host (hybrid, memory on
# v1), where CI requires them to run.
echo "vmtest: not run in the guest (cgroup v1, run on the host): cgroup_placement::v1_"
# The service's own limit needs the helper installed as a systemd service: the systemd run of
# this guest runs it.
per_mode=
if [ "$mode" = setuid ]; then
  per_mode="--skip cgroup_placement::v2_the_limit_on_the_helper_service_bounds_every_sandbox"
  echo "vmtest: not run in this mode (run in mode systemd): cgroup_placement::v2_the_limit_on_the_helper_service_bounds_every_sandbox"
fi
# A sandbox's cgroup goes to the nearest cgroup above its caller's without processes, here
# system.slice, and the helper enables controllers only there: as an administrator who lets
# users use --cpus would, have systemd offer the cpu controller in it (on cgroup v2 a CPU
# weight needs the controller; CPUAccounting= does not).
systemctl set-property --runtime nsjail-vmtest.service CPUWeight=100
# Every test that runs here runs whole: a skip fails the test itself (the harness refuses skips
# when NSJAIL_E2E_SYSTEM is set), and, in case a skip got past that, fails the run from its log.
skips=/tmp/nsjail-e2e-skips.log
rm -f "$skips"
NSJAIL_BIN_DIR="$D/bin" NSJAIL_E2E_SYSTEM="$mode" NSJAIL_E2E_LOAD_SEQUENTIAL=200 CI=true RUST_BACKTRACE=1 \
  NSJAIL_E2E_SKIP_LOG="$skips" \
  "$D/e2e" --test-threads=1 --color never --skip desktop:: --skip network:: --skip terminal:: \
  --skip bwrap_clients:: --skip cgroup_placement::v1_ $per_mode $(cat "$D/filters")
rc=$?
if [ -s "$skips" ]; then
  echo "vmtest: tests skipped in the guest (none may):"
  cat "$skips"
  rc=1
fi
if [ "$mode" = systemd ]; then
  echo "--- journal of the helper (last lines)"
  journalctl --no-pager -t nsjail-helper | tail -n 5
fi
"$D/xtask" uninstall || rc=1
if [ -e /usr/local/libexec/nsjail/nsjail-helper ] || [ -e /usr/local/libexec/nsjail/nsjail-helperd ] \
  || [ -e /run/nsjail/helper.sock ]; then
  echo "vmtest: uninstall left files behind"; rc=1
fi
echo "vmtest-result: mode=$mode e2e-exit=$rc"
exit $rc
"#;

pub fn vmtest(ws: &Workspace, args: &VmtestArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "vmtest needs root (debootstrap, and the suite inside runs as root): sudo cargo xtask vmtest"
        );
    }
    let modes: Vec<String> = if args.modes.is_empty() {
        vec!["setuid".into(), "systemd".into()]
    } else {
        args.modes.clone()
    };
    for m in &modes {
        if m != "setuid" && m != "systemd" {
            bail!("--mode {m}: expected setuid or systemd");
        }
    }
    let began = Instant::now();
    ensure_host_packages()?;
    let cache = ws.target.join("vmtest");
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

    let kernel = fetch_kernel(&cache)?;
    let root = root_image(&cache, &kernel, args.rebuild)?;
    let initrd = cache.join("initrd.cpio");
    write_initramfs(&kernel, &initrd)?;
    let disk = test_disk(ws, &cache, &args.filters)?;
    println!(
        "vmtest: prepared in {:.0}s (root {}, kernel {})",
        began.elapsed().as_secs_f64(),
        root.display(),
        kernel.version
    );

    let mut failed = Vec::new();
    for mode in &modes {
        let t = Instant::now();
        let ok = boot(&cache, &kernel, &root, &initrd, &disk, mode, args)?;
        println!(
            "vmtest: mode {mode}: {} in {:.0}s",
            if ok { "passed" } else { "FAILED" },
            t.elapsed().as_secs_f64()
        );
        if !ok {
            failed.push(mode.clone());
        }
    }
    println!("vmtest: total {:.0}s", began.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("vmtest failed for: {}", failed.join(", "));
    }
    step("vmtest passed");
    Ok(())
}

/// Install what is missing of qemu, debootstrap, busybox-static, e2fsprogs with apt-get.
fn ensure_host_packages() -> Result<()> {
    let mut missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(tool, _)| !Path::new(tool).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    // The initramfs needs the static busybox; Debian's plain `busybox` is dynamic.
    if !package_installed("busybox-static") {
        missing.push("busybox-static");
    }
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing host packages: {}", missing.join(" ")));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    run_checked(&mut update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_checked(&mut install)
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Output of a command that must succeed.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = crate::show(cmd);
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Debian mirror apt is configured with for the release itself (not -security or -updates).
fn debian_mirror() -> Result<String> {
    let mut texts = Vec::new();
    for f in ["/etc/apt/sources.list"] {
        if let Ok(t) = fs::read_to_string(f) {
            texts.push(t);
        }
    }
    if let Ok(rd) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Ok(t) = fs::read_to_string(&p) {
                texts.push(t);
            }
        }
    }
    for t in &texts {
        if let Some(m) = mirror_in(t) {
            return Ok(m);
        }
    }
    bail!("no apt source for Debian {SUITE} found in /etc/apt/sources.list*")
}

/// The URI serving `bookworm` itself in one sources file (one-line or deb822 format).
fn mirror_in(text: &str) -> Option<String> {
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.first() == Some(&"deb") {
            let rest: Vec<&str> = w[1..]
                .iter()
                .filter(|x| !x.starts_with('['))
                .copied()
                .collect();
            if rest.get(1) == Some(&SUITE) {
                return rest.first().map(|s| s.to_string());
            }
        }
    }
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        };
        let is_deb = field("Types:").is_some_and(|t| t.iter().any(|x| x == "deb"));
        let serves = field("Suites:").is_some_and(|s| s.iter().any(|x| x == SUITE));
        if is_deb
            && serves
            && let Some(uri) = field("URIs:").and_then(|u| u.into_iter().next())
        {
            return Some(uri);
        }
    }
    None
}

/// The unpacked kernel package.
struct Kernel {
    /// e.g. `6.1.0-57-amd64`
    version: String,
    vmlinuz: PathBuf,
    /// `lib/modules/<version>/kernel`
    modules: PathBuf,
}

/// Download `linux-image-amd64` and the image it depends on (cached by version), and unpack it.
fn fetch_kernel(cache: &Path) -> Result<Kernel> {
    let dl = cache.join("debs");
    fs::create_dir_all(&dl)?;
    step("apt-get download linux-image-amd64");
    let mut get = Command::new("apt-get");
    get.args(["download", "-qq", "linux-image-amd64"])
        .current_dir(&dl);
    if run_checked(&mut get).is_err() {
        let mut update = Command::new("apt-get");
        update.args(["update", "-qq"]);
        run_checked(&mut update)?;
        run_checked(&mut get)?;
    }
    let meta = newest(&dl, "linux-image-amd64_")?;
    let depends = output(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&meta)
            .arg("Depends"),
    )?;
    let image_pkg = depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-"))
        .context("linux-image-amd64 depends on no linux-image-* package")?
        .to_string();
    let version = image_pkg.trim_start_matches("linux-image-").to_string();
    let unpacked = cache.join(format!("kernel-{version}"));
    if !unpacked.join("boot").is_dir() {
        if newest(&dl, &format!("{image_pkg}_")).is_err() {
            step(&format!("apt-get download {image_pkg}"));
            let mut get = Command::new("apt-get");
            get.args(["download", "-qq", &image_pkg]).current_dir(&dl);
            run_checked(&mut get)?;
        }
        let deb = newest(&dl, &format!("{image_pkg}_"))?;
        let tmp = cache.join(format!("kernel-{version}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        let mut x = Command::new("dpkg-deb");
        x.arg("-x").arg(&deb).arg(&tmp);
        run_checked(&mut x)?;
        fs::rename(&tmp, &unpacked)?;
    }
    Ok(Kernel {
        vmlinuz: unpacked.join(format!("boot/vmlinuz-{version}")),
        modules: unpacked.join(format!("lib/modules/{version}/kernel")),
        version,
    })
}

/// The newest file in `dir` whose name starts with `prefix` and ends with `.deb`.
fn newest(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(prefix) && n.ends_with(".deb")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .with_context(|| format!("no {prefix}*.deb in {}", dir.display()))
}

/// The cached root image for this recipe and kernel, built if missing.
fn root_image(cache: &Path, kernel: &Kernel, rebuild: bool) -> Result<PathBuf> {
    let mirror = debian_mirror()?;
    let mut h = DefaultHasher::new();
    (
        SUITE,
        DEBOOTSTRAP_INCLUDE,
        &mirror,
        GUEST_UNIT,
        GUEST_BOOT_SCRIPT,
        &kernel.version,
        "recipe-1",
    )
        .hash(&mut h);
    let key = format!("{:016x}", h.finish());
    let image = cache.join(format!("root-{key}.img"));
    if image.is_file() && !rebuild {
        println!("vmtest: cached root image {}", image.display());
        return Ok(image);
    }
    let t = Instant::now();
    let tmp_dir = cache.join(format!("rootfs.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp_dir);
    let mut d = Command::new("debootstrap");
    d.args([
        "--variant=minbase",
        &format!("--include={DEBOOTSTRAP_INCLUDE}"),
        SUITE,
    ])
    .arg(&tmp_dir)
    .arg(&mirror);
    run_checked(&mut d)?;
    configure_root(&tmp_dir)?;
    let tmp_img = cache.join(format!("root-{key}.img.tmp-{}", std::process::id()));
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "nsjroot", "-d"])
        .arg(&tmp_dir)
        .arg(&tmp_img)
        .arg("1536M");
    run_checked(&mut mkfs)?;
    fs::remove_dir_all(&tmp_dir).with_context(|| format!("removing {}", tmp_dir.display()))?;
    // Older images (another recipe or kernel) go; the new one appears whole, by rename.
    for e in fs::read_dir(cache)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("root-") && n.ends_with(".img") {
            let _ = fs::remove_file(e.path());
        }
    }
    fs::rename(&tmp_img, &image)?;
    println!(
        "vmtest: built root image {} in {:.0}s",
        image.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(image)
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The guest's configuration: root on /dev/vda, the runner unit enabled, apt's timers masked.
fn configure_root(root: &Path) -> Result<()> {
    write_file(&root.join("etc/fstab"), "/dev/vda / ext4 rw 0 1\n", 0o644)?;
    write_file(&root.join("etc/hostname"), "vmtest\n", 0o644)?;
    let units = root.join("etc/systemd/system");
    write_file(&units.join("nsjail-vmtest.service"), GUEST_UNIT, 0o644)?;
    write_file(
        &root.join("usr/local/sbin/nsjail-vmtest-boot"),
        GUEST_BOOT_SCRIPT,
        0o755,
    )?;
    let wants = units.join("multi-user.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("nsjail-vmtest.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/systemd/system/nsjail-vmtest.service", &link)?;
    for t in ["apt-daily.timer", "apt-daily-upgrade.timer"] {
        let p = units.join(t);
        let _ = fs::remove_file(&p);
        std::os::unix::fs::symlink("/dev/null", &p)?;
    }
    Ok(())
}

/// The `depends=` field of a module's `.modinfo`.
fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    ko.windows(key.len())
        .position(|w| w == key)
        .map(|i| {
            let rest = &ko[i + key.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Index the kernel's modules by name (`-` and `_` are the same to the kernel).
fn index_modules(dir: &Path, out: &mut std::collections::HashMap<String, PathBuf>) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                index_modules(&p, out);
            } else if let Some(stem) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                out.insert(stem.replace('-', "_"), p.clone());
            }
        }
    }
}

/// The modules to load, dependencies first.
fn module_order(kernel: &Kernel) -> Result<Vec<(String, PathBuf)>> {
    let mut index = std::collections::HashMap::new();
    index_modules(&kernel.modules, &mut index);
    let mut order: Vec<(String, PathBuf)> = Vec::new();
    fn visit(
        name: &str,
        index: &std::collections::HashMap<String, PathBuf>,
        order: &mut Vec<(String, PathBuf)>,
        depth: usize,
    ) -> Result<()> {
        let name = name.replace('-', "_");
        if order.iter().any(|(n, _)| *n == name) {
            return Ok(());
        }
        if depth > 32 {
            bail!("module dependencies too deep at {name}");
        }
        let path = index
            .get(&name)
            .with_context(|| format!("kernel module {name} not found"))?;
        let bytes = fs::read(path)?;
        for dep in module_depends(&bytes) {
            visit(&dep, index, order, depth + 1)?;
        }
        order.push((name, path.clone()));
        Ok(())
    }
    for m in INITRAMFS_MODULES {
        visit(m, &index, &mut order, 0)?;
    }
    Ok(order)
}

/// A newc ("070701") cpio archive, which the kernel unpacks as the initramfs.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        self.ino += 1;
        let mut h = String::from("070701");
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        for v in [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ] {
            let _ = write!(h, "{v:08x}");
        }
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}

/// busybox, the modules, and an init that loads them, mounts /dev/vda and switches to it.
fn write_initramfs(kernel: &Kernel, out: &Path) -> Result<()> {
    let modules = module_order(kernel)?;
    let busybox = fs::read("/bin/busybox").context("reading /bin/busybox (busybox-static)")?;
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let init = format!(
        r#"#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {}; do
  insmod /lib/modules/$m.ko || echo "vmtest initramfs: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
if ! mount -t ext4 -o rw /dev/vda /newroot; then
  echo "vmtest initramfs: cannot mount /dev/vda"; reboot -f
fi
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /lib/systemd/systemd
"#,
        names.join(" ")
    );
    let mut c = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        c.entry(d, 0o040755, &[], (0, 0));
    }
    c.entry("dev/console", 0o020600, &[], (5, 1));
    c.entry("init", 0o100755, init.as_bytes(), (0, 0));
    c.entry("bin/busybox", 0o100755, &busybox, (0, 0));
    for (name, path) in &modules {
        let data = fs::read(path)?;
        c.entry(&format!("lib/modules/{name}.ko"), 0o100644, &data, (0, 0));
    }
    fs::write(out, c.finish()).with_context(|| format!("writing {}", out.display()))
}

/// The second disk: binaries, the e2e test binary, this xtask, the runner.
fn test_disk(ws: &Workspace, cache: &Path, filters: &[String]) -> Result<PathBuf> {
    let bins = ws.build_bins(Profile::Release, false)?;
    let e2e = e2e_binary(ws)?;
    // The hardening tests run this small program inside sandboxes; it sits next to the binaries
    // under test, where the suite looks for it.
    let mut probe = ws.cargo();
    probe.args([
        "build",
        "--quiet",
        "-p",
        "nsjail-tests",
        "--bin",
        "nsjail-probe",
    ]);
    run_checked(&mut probe)?;
    let probe = ws.target.join("debug").join("nsjail-probe");
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let stage = cache.join(format!("disk.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(stage.join("bin"))?;
    let mut total = 0;
    for (from, to) in [
        (
            bins.join(crate::CLI_BIN),
            stage.join("bin").join(crate::CLI_BIN),
        ),
        (
            bins.join(crate::HELPER_BIN),
            stage.join("bin").join(crate::HELPER_BIN),
        ),
        (
            bins.join(crate::HELPERD_BIN),
            stage.join("bin").join(crate::HELPERD_BIN),
        ),
        (probe, stage.join("bin").join("nsjail-probe")),
        (e2e, stage.join("e2e")),
        (xtask, stage.join("xtask")),
    ] {
        total += fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
    }
    write_file(&stage.join("run.sh"), RUNNER, 0o755)?;
    // Word-split by the runner's shell: test names have no spaces.
    write_file(&stage.join("filters"), &filters.join(" "), 0o644)?;
    let img = cache.join("tests.img");
    let _ = fs::remove_file(&img);
    let mb = total / (1 << 20) * 3 / 2 + 32;
    let mut mkfs = Command::new("mkfs.ext4");
    mkfs.args(["-q", "-F", "-L", "nsjtests", "-d"])
        .arg(&stage)
        .arg(&img)
        .arg(format!("{mb}M"));
    run_checked(&mut mkfs)?;
    fs::remove_dir_all(&stage)?;
    Ok(img)
}

/// Build the e2e test binary (`cargo test --no-run`) and return its path.
fn e2e_binary(ws: &Workspace) -> Result<PathBuf> {
    let mut cmd = ws.cargo();
    cmd.args([
        "test",
        "-p",
        "nsjail-tests",
        "--test",
        "e2e",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    let out = output(&mut cmd)?;
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_e2e = v
            .pointer("/target/name")
            .and_then(|n| n.as_str())
            .is_some_and(|n| n == "e2e");
        if let (true, Some(exe)) = (is_e2e, v.get("executable").and_then(|e| e.as_str())) {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo test --no-run did not name the e2e test binary")
}

/// Boot once in `mode`; `true` when the guest reported success.
fn boot(
    cache: &Path,
    kernel: &Kernel,
    root: &Path,
    initrd: &Path,
    disk: &Path,
    mode: &str,
    args: &VmtestArgs,
) -> Result<bool> {
    let console = cache.join(format!("console-{mode}.log"));
    let results = cache.join(format!("results-{mode}.log"));
    for f in [&console, &results] {
        let _ = fs::remove_file(f);
    }
    let mut q = Command::new("qemu-system-x86_64");
    q.args(["-machine", "q35", "-accel", "tcg,thread=multi"])
        .args(["-smp", &args.cpus.to_string(), "-m", "2048"])
        .args(["-nographic", "-no-reboot", "-snapshot", "-nic", "none"])
        .args(["-monitor", "none", "-display", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &format!("console=ttyS0 panic=-1 nsjail.vmtest={mode}"),
        ])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", root.display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", disk.display()))
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    step(&format!(
        "booting the guest ({mode}): {} (timeout {}s)",
        crate::show(&q),
        args.timeout
    ));
    let mut child = q.spawn().context("starting qemu-system-x86_64")?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = fs::read_to_string(&results).unwrap_or_default();
    print!("{}", indent(&report));
    let _ = std::io::stdout().flush();
    let passed = report.lines().any(|l| l.trim() == "vmtest-exit: 0");
    match status {
        None => {
            println!(
                "vmtest: the guest did not finish within {}s and was killed; console: {}",
                args.timeout,
                console.display()
            );
            print_tail(&console);
            Ok(false)
        }
        Some(st) if !passed => {
            println!(
                "vmtest: qemu {st}; the guest did not report success; console: {}",
                console.display()
            );
            print_tail(&console);
            Ok(false)
        }
        Some(_) => Ok(true),
    }
}

/// The guest's lines, marked so they cannot be mistaken for the host's own test summary.
fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  guest| {l}\n")).collect()
}

fn print_tail(path: &Path) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines[lines.len().saturating_sub(40)..] {
        println!("  console| {l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_found_in_both_source_formats() {
        let deb822 = "Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://s.example/debian-security\n\
                      Suites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://m.example/debian")
        );
        let one_line = "deb http://s.example/sec bookworm-security main\n\
                        deb [arch=amd64] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(one_line).as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_in("deb http://x/ trixie main\n"), None);
    }

    #[test]
    fn module_dependencies_are_read_from_modinfo() {
        let ko = b"\x7fELF....license=GPL\0depends=jbd2,mbcache,crc16\0retpoline=Y\0";
        assert_eq!(module_depends(ko), ["jbd2", "mbcache", "crc16"]);
        assert!(module_depends(b"depends=\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut c = Cpio::default();
        c.entry("init", 0o100755, b"abc", (0, 0));
        let buf = c.finish();
        assert!(buf.starts_with(b"070701"));
        assert_eq!(&buf[110..115], b"init\0");
        // header 110 + name 5 = 115 -> padded to 116; data 3 -> padded to 120.
        assert_eq!(&buf[116..119], b"abc");
        assert_eq!(&buf[120..126], b"070701");
        assert_eq!(buf.len() % 4, 0);
    }
}
