//! **Sandbox side.** This code runs in the sandbox's processes, inside the new namespaces: the
//! first process after `clone` (`child`), the sandbox's PID 1 (`init`) and the payload up to its
//! `execve`. The first process starts with the helper's credentials and every capability of its
//! new user namespace; its first act after the parent wrote the ID maps is to switch all its ids
//! (real, effective, saved, filesystem) to the mapped ones, so every path below is opened and
//! checked by the kernel as the caller. It stays non-dumpable and dies with the helper.
//!
//! Capabilities here are the sandbox user namespace's only, never the host's; the payload leaves
//! with the requested set (empty by default), `no_new_privs`, its Landlock ruleset and its
//! seccomp filters. What is installed was decided on the host side before `clone`
//! (`host::grants`, `host::seccomp`); this side only carries it out.
//!
//! The host side also calls two small pieces of `terminal`: making the socketpair before
//! `clone`, and receiving and checking the terminal master the sandbox sends back.

pub mod child;
pub mod init;
pub mod interp;
pub mod landlock;
pub mod lockdown;
pub mod mounts;
pub mod rlimits;
pub mod terminal;
