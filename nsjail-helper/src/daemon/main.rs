//! `nsjail-helperd`: the helper as a service, run by root or systemd (never setuid). It listens
//! on a Unix socket (its own, or one systemd passes by socket activation) and serves each
//! accepted connection in a forked process with the same function as the setuid `nsjail-helper`
//! ([`nsjail_helper::host::serve::serve_connection`]).
//!
//! **Daemon only.** This directory is this binary's: the listening process, and each forked
//! connection process until it hands its connection to `host::serve`. It runs as root in the
//! host's namespaces. The setuid file does not link any of it.
#![deny(unsafe_code)]
// The helper never panics on input: no unwrap/expect/panic outside tests, enforced by clippy.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod connection_limit;
mod listen;
mod peer;
mod service;

use std::io::Write;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::stat::umask;
use nsjail_helper::host::cgroup;
use nsjail_helper::sys;

use crate::listen::Activation;
use crate::service::Config;

const USAGE: &str = "usage: nsjail-helperd [--socket PATH] [--socket-mode OCTAL] \
     [--request-timeout SECS] [--max-per-user N]   (as root, or from systemd)";

fn main() {
    std::process::exit(run());
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    let _ = writeln!(std::io::stderr(), "nsjail-helperd: {msg}");
    1
}

fn run() -> i32 {
    // Non-dumpable, as the setuid helper: the connection processes hold callers' requests.
    if nix::unistd::geteuid().is_root()
        && let Err(e) = nix::sys::prctl::set_dumpable(false)
    {
        return fail(format!("prctl(PR_SET_DUMPABLE): {}", e.desc()));
    }
    // Socket activation's two variables are the only thing we take from the environment.
    let activation = Activation::from_env();
    sys::clear_environment();
    let cfg = match daemon_args(&activation) {
        Ok(cfg) => cfg,
        Err(msg) => return fail(msg),
    };
    umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    run_daemon(cfg)
}

fn daemon_args(activation: &Activation) -> Result<Config, String> {
    // A setuid start is made by whoever runs the binary: they must not get a root daemon on a
    // socket of their choosing (it would also remove a stale socket there as root).
    let uids = nix::unistd::getresuid().map_err(|e| format!("getresuid: {}", e.desc()))?;
    if uids.real != uids.effective {
        return Err(format!(
            "nsjail-helperd must be started by root or by systemd, not through a setuid bit (real \
             uid {}, effective uid {})",
            uids.real, uids.effective
        ));
    }
    let mut cfg = Config {
        socket: PathBuf::from(listen::DEFAULT_SOCKET),
        socket_mode: 0o666,
        request_timeout: service::DEFAULT_REQUEST_TIMEOUT,
        max_per_user: None,
        activated: activation.fds_for_us()?,
    };
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let flag = flag.to_string_lossy();
        let mut value = || {
            it.next()
                .and_then(|v| v.to_str())
                .ok_or_else(|| format!("{flag} wants a value\n{USAGE}"))
        };
        match flag.as_ref() {
            "--socket" => cfg.socket = PathBuf::from(value()?),
            "--socket-mode" => {
                let v = value()?;
                cfg.socket_mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| format!("--socket-mode {v}: not an octal mode like 0660"))?;
            }
            "--request-timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .ok_or_else(|| {
                        format!("--request-timeout {v}: seconds, above 0, at most 3600")
                    })?;
                cfg.request_timeout = Duration::from_secs_f64(secs);
            }
            "--max-per-user" => {
                let v = value()?;
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--max-per-user {v}: a number above 0"))?;
                cfg.max_per_user = Some(n);
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

fn run_daemon(cfg: Config) -> i32 {
    // Keep 0–2 and the socket systemd passed, if it did; close everything else we inherited.
    let keep: &[RawFd] = if cfg.activated.is_some() {
        &[listen::LISTEN_FDS_START]
    } else {
        &[]
    };
    if let Err(e) = sys::close_fds_from_except(3, keep) {
        return fail(format!("close_range: {}", e.desc()));
    }
    if let Err(e) = sys::reset_signals() {
        return fail(format!("resetting signal dispositions: {}", e.desc()));
    }
    // Sandboxes go under the service's own cgroup (see cgroup::daemon_leaf).
    match cgroup::daemon_leaf() {
        Ok(Some(what)) => {
            let _ = writeln!(std::io::stderr(), "nsjail-helperd: cgroup: {what}");
        }
        Ok(None) => {}
        Err(e) => return fail(format!("cgroup: {e}")),
    }
    match service::run(cfg) {
        Ok(()) => 0,
        Err(msg) => fail(msg),
    }
}
