//! The OCI/Docker seccomp profile parser (run by the CLI on a user's file; its output is what
//! the helper compiles).
//!
//! Properties checked: every profile it accepts passes the helper's own check of a wire
//! profile, and every refusal is one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::CapSet;
use nsjail_core::seccomp::oci::{self, OciContext};

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
    match oci::parse(json, &ctx) {
        Ok(profile) => assert_eq!(profile.check(), Ok(()), "{profile:?}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "not one line: {msg:?}");
        }
    }
});
