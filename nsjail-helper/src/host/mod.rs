//! **Host side.** This code runs in the helper's own process, in the host's namespaces: as root
//! (real, effective and saved uid 0) when the helper is privileged — the setuid helper once it
//! knows its caller, or a connection process of the daemon — and as the caller when it is not.
//! It reads the caller's request, applies the admin policy, makes the sandbox's cgroup, clones
//! the sandbox, writes its ID maps, starts `pasta`, supervises the sandbox and reports how it
//! ended.
//!
//! Everything it receives (the request, the fds that come with it, what the sandbox writes to
//! its pipes) is untrusted input checked here. It never opens a path the caller named: that is
//! the sandbox side's job, done with the caller's ids. The one process it starts outside the
//! sandbox, `pasta`, drops to the caller's uid in the sandbox's user namespace before `exec`.

pub mod caller;
pub mod cgroup;
pub mod conn;
pub mod enforce;
pub mod grants;
pub mod inherit;
pub mod pasta;
pub mod sandbox_slots;
pub mod seccomp;
pub mod serve;
pub mod spawn;
pub mod supervise;
pub mod syslog;
pub mod trusted;
pub mod userns;
