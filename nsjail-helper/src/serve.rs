//! The per-connection function: the one code path behind both ways into the helper (setuid
//! child of the CLI, or a connection accepted by the daemon).

use std::os::fd::OwnedFd;

use nsjail_core::HelperEvent;
use nsjail_core::validate;

use crate::caller::Caller;
use crate::conn::Conn;
use crate::error::Result;
use crate::grants;
use crate::spawn;
use crate::supervise;

/// Exit status of the helper after serving a connection.
pub enum Outcome {
    /// The request was carried out (whatever the payload did).
    Served,
    /// The request was refused or failed; the client was told why.
    Reported,
    /// The request failed and the client could not be told; the message is for stderr.
    Unreported(String),
}

pub fn serve_connection(sock: OwnedFd, caller: &Caller) -> Outcome {
    let mut conn = Conn::new(sock);
    match serve(&mut conn, caller) {
        Ok(()) => Outcome::Served,
        Err(e) => {
            let message = e.to_string();
            let ev = HelperEvent::Error {
                kind: e.kind(),
                message: message.clone(),
            };
            match conn.send(&ev) {
                Ok(()) => Outcome::Reported,
                Err(_) => Outcome::Unreported(message),
            }
        }
    }
}

fn serve(conn: &mut Conn, caller: &Caller) -> Result<()> {
    let (req, stdio, bpf_fds) = conn.read_spawn()?;
    validate::check(&req)?;
    let verbose = req.verbose;
    let mut steps = Vec::new();
    if verbose {
        steps.push(format!(
            "helper: serving uid {} gid {} ({})",
            caller.uid,
            caller.gid,
            caller.mode()
        ));
    }
    // The policy, the account files and the BPF programs are read, and their fds closed,
    // before anything is cloned: none of them can reach the sandbox.
    let grants = grants::decide(&req, caller, bpf_fds)?;
    if verbose {
        steps.extend(grants.steps.iter().cloned());
    }
    let spawned = spawn::spawn(&req, caller, stdio, &grants, &mut |s| {
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
