//! The OCI runtime-spec / Docker seccomp profile (JSON), resolved into a [`SeccompProfile`].
//!
//! Understood: `defaultAction`, `defaultErrnoRet`, `architectures`, `archMap` (Docker; only
//! checked), `flags`, and `syscalls` entries with `names` (or the old `name`), `action`,
//! `errnoRet`, `args` (`index`, `value`, `valueTwo`, `op`), `comment`, and Docker's `includes` /
//! `excludes` (`arches`, `caps`, `minKernel`), evaluated here against the sandbox's capabilities,
//! the native architecture and the running kernel. Any other field, an unknown system call name,
//! an unknown or unsupported action and malformed JSON are errors that name the entry.
//!
//! Names of system calls that exist only on other architectures (`_llseek`, `arm_fadvise64_64`,
//! …) are skipped, as libseccomp does. Every non-native ABI is denied whatever `architectures`
//! says.

use serde::Deserialize;
use thiserror::Error;

use nsjail_core::caps::{self, CapSet};

use crate::profile::{
    ArgCmp, CmpOp, FLAG_LOG, FLAG_SPEC_ALLOW, MAX_ARGS, MAX_ERRNO, MAX_RULES, SeccompAction,
    SeccompProfile, SeccompRule,
};
use crate::{is_foreign_syscall, syscall_number};

/// The largest profile file accepted, in bytes.
pub const MAX_PROFILE_BYTES: usize = 1024 * 1024;

/// What `includes` / `excludes` are evaluated against.
#[derive(Clone, Copy, Debug, Default)]
pub struct OciContext {
    /// The capabilities the payload will have.
    pub caps: CapSet,
    /// The running kernel's (major, minor), when known; unknown means every `minKernel` holds.
    pub kernel: Option<(u32, u32)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OciError {
    #[error("seccomp profile: {0}")]
    Json(String),
    #[error("seccomp profile: larger than {MAX_PROFILE_BYTES} bytes")]
    TooLarge,
    #[error("seccomp profile: {at}: unknown action {action:?}")]
    UnknownAction { at: String, action: String },
    #[error("seccomp profile: {at}: action {action} is not supported by nsjail")]
    UnsupportedAction { at: String, action: String },
    #[error("seccomp profile: {at}: errno {value} out of range (0 to {MAX_ERRNO})")]
    BadErrno { at: String, value: u64 },
    #[error("seccomp profile: syscalls[{entry}]: unknown system call {name:?}")]
    UnknownSyscall { entry: usize, name: String },
    #[error("seccomp profile: syscalls[{entry}]: no system call names")]
    NoNames { entry: usize },
    #[error("seccomp profile: syscalls[{entry}].args[{arg}]: {reason}")]
    BadArg {
        entry: usize,
        arg: usize,
        reason: String,
    },
    #[error("seccomp profile: {at}: unknown architecture {arch:?}")]
    UnknownArch { at: String, arch: String },
    #[error("seccomp profile: syscalls[{entry}]: {reason}")]
    BadFilter { entry: usize, reason: String },
    #[error(
        "seccomp profile: syscalls[{entry}]: {name:?} already has action {earlier} without conditions (syscalls[{other}]); conflicting action {action}"
    )]
    Conflict {
        entry: usize,
        other: usize,
        name: String,
        earlier: String,
        action: String,
    },
    #[error("seccomp profile: {0} is not supported by nsjail")]
    Unsupported(String),
    #[error("seccomp profile: more than {MAX_RULES} rules")]
    TooManyRules,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u64>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u64>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Arg {
    index: u64,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// libseccomp architecture names (`architectures`, `archMap`).
const SCMP_ARCHES: &[&str] = &[
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// Go architecture names (Docker's `includes.arches`).
const GO_ARCHES: &[&str] = &[
    "386",
    "x86",
    "amd64",
    "x86_64",
    "x32",
    "arm",
    "arm64",
    "mips",
    "mips64",
    "mips64n32",
    "mipsle",
    "mipsel",
    "mips64le",
    "mipsel64",
    "mipsel64n32",
    "ppc",
    "ppc64",
    "ppc64le",
    "s390",
    "s390x",
    "parisc",
    "parisc64",
    "riscv64",
    "loong64",
    "loongarch64",
    "m68k",
    "sh",
    "sheb",
];

/// Names of the native architecture in `includes.arches`.
const NATIVE_GO: &[&str] = &["amd64", "x86_64"];

fn action(at: &str, name: &str, errno: Option<u64>) -> Result<SeccompAction, OciError> {
    let a = match name {
        "SCMP_ACT_ALLOW" => SeccompAction::Allow,
        "SCMP_ACT_ERRNO" => {
            // runc and libseccomp's default errno when none is given: EPERM.
            let e = errno.unwrap_or(1);
            if e > MAX_ERRNO as u64 {
                return Err(OciError::BadErrno {
                    at: at.to_string(),
                    value: e,
                });
            }
            SeccompAction::Errno(e as u16)
        }
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => SeccompAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => SeccompAction::KillProcess,
        "SCMP_ACT_TRAP" => SeccompAction::Trap,
        "SCMP_ACT_LOG" => SeccompAction::Log,
        "SCMP_ACT_TRACE" | "SCMP_ACT_NOTIFY" => {
            return Err(OciError::UnsupportedAction {
                at: at.to_string(),
                action: name.to_string(),
            });
        }
        _ => {
            return Err(OciError::UnknownAction {
                at: at.to_string(),
                action: name.to_string(),
            });
        }
    };
    Ok(a)
}

fn describe(a: SeccompAction) -> String {
    match a {
        SeccompAction::Allow => "SCMP_ACT_ALLOW".into(),
        SeccompAction::Errno(e) => format!("SCMP_ACT_ERRNO({e})"),
        SeccompAction::KillThread => "SCMP_ACT_KILL_THREAD".into(),
        SeccompAction::KillProcess => "SCMP_ACT_KILL_PROCESS".into(),
        SeccompAction::Trap => "SCMP_ACT_TRAP".into(),
        SeccompAction::Log => "SCMP_ACT_LOG".into(),
    }
}

fn op(name: &str) -> Option<CmpOp> {
    Some(match name {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        _ => return None,
    })
}

fn check_scmp_arch(at: &str, arch: &str) -> Result<(), OciError> {
    if SCMP_ARCHES.contains(&arch) {
        Ok(())
    } else {
        Err(OciError::UnknownArch {
            at: at.to_string(),
            arch: arch.to_string(),
        })
    }
}

/// `"4.8"` or `"5.10.0"` as (major, minor).
fn kernel_version(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    for rest in parts {
        rest.parse::<u32>().ok()?;
    }
    Some((major, minor))
}

/// Whether a Docker `includes`/`excludes` filter holds. Each given list must be satisfied:
/// `arches` contains the native architecture, every one of `caps` is in the sandbox's set, and
/// the kernel is at least `minKernel`.
fn filter_holds(entry: usize, f: &Filter, ctx: &OciContext) -> Result<bool, OciError> {
    let mut holds = true;
    if let Some(arches) = &f.arches {
        for a in arches {
            if !GO_ARCHES.contains(&a.as_str()) {
                return Err(OciError::UnknownArch {
                    at: format!("syscalls[{entry}]"),
                    arch: a.clone(),
                });
            }
        }
        holds &= arches.iter().any(|a| NATIVE_GO.contains(&a.as_str()));
    }
    if let Some(caps) = &f.caps {
        for c in caps {
            let n = caps::parse_cap(c).map_err(|e| OciError::BadFilter {
                entry,
                reason: e.to_string(),
            })?;
            holds &= ctx.caps.contains(n);
        }
    }
    if let Some(k) = &f.min_kernel {
        let want = kernel_version(k).ok_or_else(|| OciError::BadFilter {
            entry,
            reason: format!("minKernel {k:?} is not a version like \"4.8\""),
        })?;
        if let Some(have) = ctx.kernel {
            holds &= have >= want;
        }
    }
    Ok(holds)
}

/// serde_json quotes what it did not expect (a field name, say) as it was decoded: control
/// characters in it must not break the one-line message.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Parse and resolve a profile. `ctx` decides Docker's conditional entries.
pub fn parse(json: &[u8], ctx: &OciContext) -> Result<SeccompProfile, OciError> {
    if json.len() > MAX_PROFILE_BYTES {
        return Err(OciError::TooLarge);
    }
    let p: Profile =
        serde_json::from_slice(json).map_err(|e| OciError::Json(one_line(&e.to_string())))?;
    let default_action = action("defaultAction", &p.default_action, p.default_errno_ret)?;
    if let Some(archs) = &p.architectures {
        for a in archs {
            check_scmp_arch("architectures", a)?;
        }
    }
    for m in p.arch_map.iter().flatten() {
        check_scmp_arch("archMap", &m.architecture)?;
        for a in m.sub_architectures.iter().flatten() {
            check_scmp_arch("archMap", a)?;
        }
    }
    let mut flags = 0;
    for f in p.flags.iter().flatten() {
        flags |= match f.as_str() {
            // One thread: synchronising threads is moot.
            "SECCOMP_FILTER_FLAG_TSYNC" => 0,
            "SECCOMP_FILTER_FLAG_LOG" => FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => FLAG_SPEC_ALLOW,
            other => return Err(OciError::Unsupported(format!("flag {other:?}"))),
        };
    }
    if p.listener_path.as_deref().is_some_and(|s| !s.is_empty())
        || p.listener_metadata
            .as_deref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(OciError::Unsupported(
            "listenerPath (seccomp user notification)".into(),
        ));
    }

    let mut rules: Vec<SeccompRule> = Vec::new();
    // For each syscall number: (entry index, action) of its rule without conditions.
    let mut unconditional: Vec<(u32, usize, SeccompAction)> = Vec::new();
    for (entry, e) in p.syscalls.iter().flatten().enumerate() {
        let at = format!("syscalls[{entry}]");
        let act = action(&at, &e.action, e.errno_ret)?;
        let mut names: Vec<&str> = e.names.iter().flatten().map(String::as_str).collect();
        if let Some(n) = &e.name {
            names.push(n);
        }
        if names.is_empty() {
            return Err(OciError::NoNames { entry });
        }
        let mut args = Vec::new();
        for (i, a) in e.args.iter().flatten().enumerate() {
            let bad = |reason: String| OciError::BadArg {
                entry,
                arg: i,
                reason,
            };
            if a.index > 5 {
                return Err(bad(format!(
                    "index {} out of range (system calls have arguments 0 to 5)",
                    a.index
                )));
            }
            let o = op(&a.op).ok_or_else(|| bad(format!("unknown operator {:?}", a.op)))?;
            args.push(ArgCmp {
                index: a.index as u8,
                op: o,
                value: a.value,
                value_two: a.value_two,
            });
        }
        if args.len() > MAX_ARGS {
            return Err(OciError::BadArg {
                entry,
                arg: args.len() - 1,
                reason: format!("more than {MAX_ARGS} conditions in one entry"),
            });
        }
        // Names are checked even when the entry does not apply, so a typo never hides.
        let mut numbers = Vec::new();
        for name in names {
            match syscall_number(name) {
                Some(nr) => numbers.push((name, nr)),
                None if is_foreign_syscall(name) => {}
                None => {
                    return Err(OciError::UnknownSyscall {
                        entry,
                        name: name.to_string(),
                    });
                }
            }
        }
        let included = match &e.includes {
            Some(f) => filter_holds(entry, f, ctx)?,
            None => true,
        };
        let excluded = match &e.excludes {
            Some(f) => {
                // An exclusion applies when any of its lists matches.
                let mut any = false;
                if let Some(a) = &f.arches {
                    any |= filter_holds(
                        entry,
                        &Filter {
                            arches: Some(a.clone()),
                            ..Default::default()
                        },
                        ctx,
                    )?;
                }
                if let Some(c) = &f.caps {
                    for cap in c {
                        any |= filter_holds(
                            entry,
                            &Filter {
                                caps: Some(vec![cap.clone()]),
                                ..Default::default()
                            },
                            ctx,
                        )?;
                    }
                }
                if let Some(k) = &f.min_kernel {
                    any |= filter_holds(
                        entry,
                        &Filter {
                            min_kernel: Some(k.clone()),
                            ..Default::default()
                        },
                        ctx,
                    )?;
                }
                any
            }
            None => false,
        };
        if !included || excluded {
            continue;
        }
        for (name, nr) in numbers {
            if args.is_empty() {
                if let Some((_, other, earlier)) =
                    unconditional.iter().find(|(n, _, _)| *n == nr).copied()
                {
                    if earlier != act {
                        return Err(OciError::Conflict {
                            entry,
                            other,
                            name: name.to_string(),
                            earlier: describe(earlier),
                            action: describe(act),
                        });
                    }
                    continue;
                }
                unconditional.push((nr, entry, act));
            }
            if rules.len() >= MAX_RULES {
                return Err(OciError::TooManyRules);
            }
            rules.push(SeccompRule {
                syscall: nr,
                action: act,
                args: args.clone(),
            });
        }
    }
    Ok(SeccompProfile {
        default_action,
        rules,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> OciContext {
        OciContext::default()
    }

    fn nr(name: &str) -> u32 {
        syscall_number(name).unwrap()
    }

    #[test]
    fn a_small_profile() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["read", "write", "_llseek"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                 "comment": "no namespaces"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["kill"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"name": "getpid", "action": "SCMP_ACT_LOG"}
            ]
        }"#;
        let p = parse(json, &ctx()).unwrap();
        assert_eq!(p.default_action, SeccompAction::Errno(38));
        assert_eq!(p.flags, 0);
        let got: Vec<(u32, SeccompAction, usize)> = p
            .rules
            .iter()
            .map(|r| (r.syscall, r.action, r.args.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (nr("read"), SeccompAction::Allow, 0),
                (nr("write"), SeccompAction::Allow, 0),
                (nr("personality"), SeccompAction::Allow, 1),
                (nr("clone"), SeccompAction::Allow, 1),
                (nr("mkdir"), SeccompAction::Errno(13), 0),
                (nr("kill"), SeccompAction::KillProcess, 0),
                (nr("getpid"), SeccompAction::Log, 0),
            ]
        );
        assert_eq!(
            p.rules[3].args[0],
            ArgCmp {
                index: 0,
                op: CmpOp::MaskedEq,
                value: 2114060288,
                value_two: 0
            }
        );
        assert_eq!(p.check(), Ok(()));
    }

    #[test]
    fn docker_conditions() {
        let json = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                        {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}],
            "syscalls": [
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["cacheflush"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}}
            ]
        }"#;
        let names =
            |p: &SeccompProfile| -> Vec<u32> { p.rules.iter().map(|r| r.syscall).collect() };
        let p = parse(json, &ctx()).unwrap();
        // Unknown kernel: every minKernel holds.
        assert_eq!(
            names(&p),
            [nr("arch_prctl"), nr("clone3"), nr("ptrace"), nr("bpf")]
        );
        let mut c = ctx();
        c.caps.insert(21);
        c.kernel = Some((6, 1));
        let p = parse(json, &c).unwrap();
        assert_eq!(names(&p), [nr("arch_prctl"), nr("mount"), nr("ptrace")]);
    }

    fn err(json: &str) -> String {
        parse(json.as_bytes(), &ctx()).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_entry() {
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["nosuchcall"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert_eq!(
            e,
            "seccomp profile: syscalls[1]: unknown system call \"nosuchcall\""
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_MAYBE"}"#);
        assert!(
            e.contains("defaultAction: unknown action \"SCMP_ACT_MAYBE\""),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        );
        assert!(
            e.contains("syscalls[0]: action SCMP_ACT_NOTIFY is not supported"),
            "{e}"
        );
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":7,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(e.contains("syscalls[0].args[0]: index 7"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_ALMOST"}]}]}"#,
        );
        assert!(e.contains("unknown operator \"SCMP_CMP_ALMOST\""), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}"#);
        assert!(e.contains("unknown architecture \"SCMP_ARCH_Z80\""), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","defaultActon":"x"}"#);
        assert!(e.contains("unknown field `defaultActon`"), "{e}");
        let e = err(r#"{"defaultAction": "#);
        assert!(e.starts_with("seccomp profile: EOF"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":5000}"#);
        assert!(e.contains("errno 5000 out of range"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(e.contains("syscalls[0]: no system call names"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["read"],"action":"SCMP_ACT_KILL"}]}"#,
        );
        assert!(
            e.contains("syscalls[1]: \"read\" already has action"),
            "{e}"
        );
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}"#);
        assert!(e.contains("listenerPath"), "{e}");
        let e = err(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_NEW"]}"#);
        assert!(e.contains("flag"), "{e}");
        let e = err(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_FLY"]}}]}"#,
        );
        assert!(e.contains("syscalls[0]: unknown capability"), "{e}");
        // Found by the fuzzer: a field name with an escaped newline in it.
        let nl = err(r#"{"defaultActi\n":"SCMP_ACT_ALLOW"}"#);
        assert!(nl.contains(r"`defaultActi\n`"), "{nl}");
        for e in [e, nl, err("[]"), err("null"), err(r#"{"defaultAction":1}"#)] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
        assert_eq!(
            parse(&vec![b' '; MAX_PROFILE_BYTES + 1], &ctx()),
            Err(OciError::TooLarge)
        );
    }

    #[test]
    fn duplicate_same_action_is_kept_once_and_flags_map() {
        let p = parse(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG"],
                 "syscalls":[{"names":["read","read"],"action":"SCMP_ACT_KILL"}]}"#,
            &ctx(),
        )
        .unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.flags, FLAG_LOG);
    }
}
