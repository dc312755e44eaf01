//! The per-connection function: the one code path behind both ways into the helper (setuid
//! child of the CLI, or a connection accepted by the daemon).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nsjail_core::validate;
use nsjail_core::{ErrorKind, HelperEvent};

use crate::error::Result;
use crate::host::caller::{Caller, Via};
use crate::host::conn::{self, Conn, PassedFds, Record};
use crate::host::grants;
use crate::host::spawn;
use crate::host::supervise;
use crate::host::syslog::{self, Severity};

/// Exit status of the helper after serving a connection.
pub enum Outcome {
    /// The request was carried out (whatever the payload did).
    Served,
    /// The request was refused or failed; the client was told why.
    Reported,
    /// The request failed and the client could not be told; the message is for stderr.
    Unreported(String),
}

/// How one connection is served: the same on both ways in; only what reaches us differs.
pub struct Limits {
    /// The whole request must have arrived within this time of the connection being served
    /// (the daemon sets it: there, a client that connects and sends nothing, or a byte now and
    /// then, must not hold a process of ours forever).
    pub request_timeout: Option<Duration>,
}

pub fn serve_connection(sock: OwnedFd, caller: &Caller, limits: &Limits) -> Outcome {
    let began = Instant::now();
    let mut conn = Conn::new(sock);
    let result = serve(&mut conn, caller, limits, began);
    let outcome = match result {
        Ok(()) => {
            conn.finish(conn::FINAL_FLUSH);
            Outcome::Served
        }
        Err(e) => {
            let message = e.to_string();
            // Recorded for the log even when the client cannot be told.
            let _ = conn.send(&HelperEvent::Error {
                kind: e.kind(),
                message: message.clone(),
            });
            if conn.finish(conn::FINAL_FLUSH) || conn.record.hung_up.is_some() {
                // A client that hung up before its request was complete needs no stderr line:
                // the log says what happened.
                Outcome::Reported
            } else {
                Outcome::Unreported(message)
            }
        }
    };
    log_connection(caller, &conn.record, began.elapsed(), false);
    outcome
}

/// One line in the system log per connection: who (uid, gid, pid), what (`argv[0]`), how it
/// ended, how long it took. A refusal says why; a client that hung up before sending its
/// request is `closed`, not refused.
fn log_connection(caller: &Caller, r: &Record, took: Duration, nowait: bool) {
    let via = match caller.via {
        Via::Setuid => "setuid",
        Via::Daemon => "daemon",
    };
    let pid = caller.pid.map_or("-".to_string(), |p| p.to_string());
    let argv0 = r.argv0.as_deref().map_or("-".to_string(), syslog::quote);
    let started = r.sandbox_pid.is_some();
    let hung_up = r.hung_up.map(|got| match got {
        0 => "the client hung up before sending a request".to_string(),
        n => format!("the client hung up after {n} bytes of its request"),
    });
    let end = match (&hung_up, &r.end) {
        (Some(h), _) => h.as_str(),
        (None, Some(e)) => e.as_str(),
        (None, None) if started => "the client went away; sandbox killed",
        (None, None) => "the client went away before the sandbox started",
    };
    let refused = hung_up.is_none() && r.error == Some(ErrorKind::BadRequest);
    let (what, key) = match (&hung_up, refused) {
        (Some(_), _) => ("closed", "result"),
        (None, true) => ("refused", "reason"),
        (None, false) => ("spawn", "result"),
    };
    let sandbox = r
        .sandbox_pid
        .map_or(String::new(), |p| format!(" sandbox_pid={p}"));
    let msg = format!(
        "{what} via={via} uid={} gid={} pid={pid} argv0={argv0} {key}={}{sandbox} duration={:.3}s",
        caller.uid,
        caller.gid,
        syslog::quote(end),
        took.as_secs_f64()
    );
    let severity = if refused {
        Severity::Warning
    } else {
        Severity::Info
    };
    if nowait {
        syslog::log_nowait(severity, &msg);
    } else {
        syslog::log(severity, &msg);
    }
}

/// Refuse a connection before serving it (the daemon's per-user limit, a peer inside a
/// sandbox): tell the client why, without waiting for anything from it, and log the refusal
/// without waiting either (the listening process calls this).
pub fn refuse_connection(sock: OwnedFd, caller: &Caller, reason: &str) {
    let mut conn = Conn::new(sock);
    if conn.hung_up_silently() {
        // Nothing was asked, so nothing was refused: the log says the client hung up (a
        // client that exits at once is also one the peer check finds gone).
        conn.record.hung_up = Some(0);
    } else {
        // The client may be gone or not reading: what the socket does not take at once is
        // dropped.
        let _ = conn.send(&HelperEvent::Error {
            kind: ErrorKind::BadRequest,
            message: reason.to_string(),
        });
    }
    log_connection(caller, &conn.record, Duration::ZERO, true);
}

/// Refuse a connection whose caller could not be established (the reason says why).
pub fn refuse_unknown(sock: OwnedFd, reason: &str) {
    let mut conn = Conn::new(sock);
    let _ = conn.send(&HelperEvent::Error {
        kind: ErrorKind::BadRequest,
        message: reason.to_string(),
    });
    syslog::log_nowait(
        Severity::Warning,
        &format!("refused via=daemon reason={}", syslog::quote(reason)),
    );
}

fn serve(conn: &mut Conn, caller: &Caller, limits: &Limits, began: Instant) -> Result<()> {
    // One deadline for the whole request, however its bytes come.
    let (req, fds) = conn.read_spawn(limits.request_timeout.map(|t| began + t))?;
    conn.record.argv0 = req.argv.first().cloned();
    validate::check(&req)?;
    let verbose = req.verbose;
    let mut steps = Vec::new();
    if verbose {
        steps.push(format!(
            "helper: serving uid {} gid {} ({}; {})",
            caller.uid,
            caller.gid,
            caller.mode(),
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "nsjail-helper".into())
        ));
    }
    // The policy and the account files are read, and their fds closed, before anything is
    // cloned: none of them can reach the sandbox.
    let PassedFds { stdio, extra, pass } = fds;
    let grants = grants::decide(&req, caller)?;
    // From here on the request carries the limits the policy allows (ceilings fill in what was
    // not asked for).
    let mut req = req;
    req.limits = grants.limits.clone();
    if verbose {
        steps.extend(grants.steps.iter().cloned());
    }
    let spawned = spawn::spawn(&req, caller, stdio, extra, pass, &grants, &mut |s| {
        if verbose {
            steps.push(s)
        }
    });
    for s in steps {
        conn.send(&HelperEvent::Step(s))?;
    }
    let result = supervise::supervise(spawned?, conn, verbose);
    // The concurrency slot (if any) is freed only now that the sandbox is gone.
    drop(grants);
    result
}
