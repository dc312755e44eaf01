//! nsjail's default seccomp filter, as constants: compiled when the helper is built (`build.rs`
//! runs the compiler of crate `nsjail-seccomp` on its rule lists), so that the helper links no
//! compiler and a spawn only installs a static program. What each variant denies, and why, is
//! in `nsjail-seccomp/src/default.rs`; the tests below check that these constants are the
//! programs compiled there.

use nsjail_core::seccomp::Insn;

// STRICT, WITH_USERNS, WITH_PTRACE, WITH_BOTH, USERNS_ONLY: `static [Insn]` arrays.
include!(concat!(env!("OUT_DIR"), "/default_filters.rs"));

/// Only the nested-user-namespace rules, for when the default filter is off (`--seccomp none`,
/// or a custom profile replacing it) but the policy forbids nested user namespaces.
pub fn userns_only() -> &'static [Insn] {
    &USERNS_ONLY
}

/// The default filter for these switches.
pub fn program(allow_userns: bool, allow_ptrace: bool) -> &'static [Insn] {
    match (allow_userns, allow_ptrace) {
        (false, false) => &STRICT,
        (true, false) => &WITH_USERNS,
        (false, true) => &WITH_PTRACE,
        (true, true) => &WITH_BOTH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsjail_seccomp::default as source;

    fn same(ours: &[Insn], theirs: &[nsjail_seccomp::Insn]) -> bool {
        ours.len() == theirs.len()
            && ours
                .iter()
                .zip(theirs)
                .all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k))
    }

    #[test]
    fn the_constants_are_the_programs_compiled_from_the_rule_lists() {
        for (userns, ptrace) in [(false, false), (true, false), (false, true), (true, true)] {
            assert!(
                same(program(userns, ptrace), source::program(userns, ptrace)),
                "userns {userns} ptrace {ptrace}"
            );
        }
        assert!(same(userns_only(), source::userns_only()));
        // Four different programs, and none of them the userns-only one.
        let all = [
            program(false, false),
            program(true, false),
            program(false, true),
            program(true, true),
            userns_only(),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
