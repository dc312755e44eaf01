//! The OCI/Docker seccomp profile parser and the compiler behind it (crate `nsjail-seccomp`),
//! run by the CLI on a user's file; what they produce is what the helper installs.
//!
//! Properties checked: every profile the parser accepts either compiles or is refused in one
//! line, every compiled program passes the helper's framing check (nsjail-core) and reads back
//! as the same instructions, and every program behaves as the kernel requires of a seccomp
//! filter on any system call (it returns, never runs off its end, loads only `seccomp_data`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::CapSet;
use nsjail_core::seccomp as wire;
use nsjail_seccomp::bpf::{interp, to_bytes};
use nsjail_seccomp::oci::{self, OciContext};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the context Docker's includes/excludes are evaluated in.
    let (ctx, json) = match data.split_first() {
        Some((b, rest)) => (
            OciContext {
                caps: CapSet(if b & 1 != 0 { CapSet::ALL.0 } else { 0 }),
                kernel: if b & 2 != 0 {
                    Some((4, (*b >> 2) as u32))
                } else {
                    None
                },
            },
            rest,
        ),
        None => (OciContext::default(), data),
    };
    let profile = match oci::parse(json, &ctx) {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "not one line: {msg:?}");
            return;
        }
    };
    let compiled = match profile.compile() {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "not one line: {msg:?}");
            return;
        }
    };
    assert_eq!(compiled.flags & !wire::ALLOWED_FLAGS, 0);
    let bytes = to_bytes(&compiled.insns);
    assert_eq!(bytes, compiled.bytes());
    let back = wire::insns(&bytes).expect("a compiled program passes the framing check");
    assert_eq!(back.len(), compiled.insns.len());
    for (a, b) in compiled.insns.iter().zip(&back) {
        assert_eq!((a.code, a.jt, a.jf, a.k), (b.code, b.jt, b.jf, b.k));
    }
    // Each rule's system call, and one no rule names, with arguments from the input: the
    // interpreter panics on a jump off the end or a load outside seccomp_data.
    let arg = json
        .iter()
        .fold(0u64, |a, b| a.rotate_left(8) ^ u64::from(*b));
    for nr in profile.rules.iter().map(|r| r.syscall).chain([1000]) {
        let _ = interp::run(
            &compiled.insns,
            &interp::Data::native(nr, [arg, !arg, arg >> 32, 0, u64::MAX, 1]),
        );
    }
});
