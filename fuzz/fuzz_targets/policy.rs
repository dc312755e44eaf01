//! The admin's policy file, as the helper parses it before every spawn: basic-toml under the
//! nesting limit, then serde's checks and the policy's own. A policy is root's file, not the
//! caller's, but no text of it may panic the helper or exhaust its stack.
//!
//! Properties checked besides "no panic": a policy that parses answers every question the helper
//! asks of it (access, features, limits, ID grants) without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsjail_core::policy::{Accounts, Policy, Who, granted_ranges, parse_subid};
use nsjail_core::request::Limits;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(p) = Policy::parse(&text) else {
        return;
    };
    let db = Accounts::from_files("alice:x:1000:1000::/:/bin/sh\n", "wheel:x:10:alice\n");
    let who = Who {
        uid: 1000,
        gid: 1000,
        groups: vec![10],
    };
    let _ = p.check_access(&who, &db);
    let _ = p.allow.resolve(true);
    let _ = p.allow.resolve(false);
    let _ = p.limits_within(&Limits::default());
    let _ = p.hard_stops();
    let subid = parse_subid("alice:100000:65536\n1000:200000:65536\n");
    let _ = granted_ranges(1000, 1000, &subid, &p.id_ranges.uid, &db);
    let _ = granted_ranges(1000, 1000, &subid, &p.id_ranges.gid, &db);
});
