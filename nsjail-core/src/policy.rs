//! The administrator's policy (`/etc/nsjail/policy.toml`), and the account files it refers to
//! (`/etc/passwd`, `/etc/group`, `/etc/subuid`, `/etc/subgid`), parsed from text.
//!
//! Reading the files (root-owned, not writable by group or others, never through a symlink) is the
//! helper's job; deciding what a caller may do is here, so it can be tested without a system.
//!
//! No policy file means [`Policy::default`]: everyone may use the helper, only their own uid and
//! gid are mapped, and every feature is allowed but the two that hand a payload the kernel
//! surface an admin may have withheld from users: capabilities (`--cap-add`) and nested user
//! namespaces (`--allow-userns`). Those need an explicit grant, except where the helper gives
//! nothing the kernel would not give the caller anyway (see [`Features::resolve`]).

use serde::Deserialize;
use thiserror::Error;

use crate::request::{IdRange, SpawnRequest};
use crate::seccomp::SeccompMode;

/// Where the helper looks for the policy unless the build says otherwise
/// (`NSJAIL_POLICY_PATH` at build time; never from the environment at run time).
pub const DEFAULT_POLICY_PATH: &str = "/etc/nsjail/policy.toml";
/// The sub-ID files a policy uses unless it names others.
pub const DEFAULT_SUBUID: &str = "/etc/subuid";
pub const DEFAULT_SUBGID: &str = "/etc/subgid";
/// The largest policy file read.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// The deepest nesting of arrays, inline tables and table headers a policy may have. The parser
/// recurses once per level with no limit of its own, so deeper text is refused before it is
/// parsed rather than left to exhaust the stack. A real policy nests two deep.
pub const MAX_POLICY_NESTING: usize = 16;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("{0}")]
    Parse(String),
    #[error("policy: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// A user or group, by name or number.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Principal {
    Id(u32),
    Name(String),
}

/// The whole policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub allow: Features,
    #[serde(default)]
    pub limits: Ceilings,
    #[serde(default)]
    pub id_ranges: IdRanges,
    #[serde(default)]
    pub require: Requirements,
}

/// What every sandbox must have, whatever the request says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Requirements {
    /// Every payload runs under its Landlock ruleset: `--landlock off` is refused, and so is
    /// every request on a kernel without Landlock ABI 2 or newer; `auto` no longer leaves it
    /// out for payloads that keep `CAP_SYS_ADMIN` or may create user namespaces.
    pub landlock: bool,
}

/// Who may use the helper. With neither list, everyone; otherwise a caller listed in `users`
/// or belonging (primary or supplementary group) to a group in `groups`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    pub users: Option<Vec<Principal>>,
    pub groups: Option<Vec<Principal>>,
}

/// Switches for features an administrator may want to withhold, as the policy file has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Features {
    /// `--share-net`: keep the host's network namespace. Default: allowed.
    pub share_net: bool,
    /// `--cap-add`: keep capabilities (inside the sandbox's user namespace) in the payload.
    /// Default (`None`, the key left out): see [`Features::resolve`].
    pub cap_add: Option<bool>,
    /// `--allow-userns`: let the payload create nested user namespaces. When not allowed they
    /// stay denied even without the default filter (`--seccomp none`, a replacing profile).
    /// Default: see [`Features::resolve`].
    pub userns: Option<bool>,
    /// `--seccomp none`: run without a filter. When false, a `--seccomp FILE` profile is added
    /// on top of the default filter instead of replacing it. Default: allowed.
    pub seccomp_none: bool,
    /// Binding device nodes into the sandbox (`--dev-bind`). Default: allowed.
    pub device_binds: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            share_net: true,
            cap_add: None,
            userns: None,
            seccomp_none: true,
            device_binds: true,
        }
    }
}

/// The features one caller may use, decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub share_net: bool,
    pub cap_add: bool,
    pub userns: bool,
    pub seccomp_none: bool,
    pub device_binds: bool,
}

impl Features {
    /// What a caller may use. `beyond_kernel`: the helper has privilege the caller lacks (a
    /// setuid-root helper or a root daemon serving anyone but root). Then `cap_add` and
    /// `userns` left out of the policy are refused: capabilities in a user namespace and
    /// nested user namespaces reach kernel code an administrator may have withheld from users
    /// (`kernel.unprivileged_userns_clone=0` and the like), which a helper owning the
    /// namespace as root would otherwise hand out. Otherwise (a helper without privilege, a
    /// root caller) they are allowed: the kernel would give the caller as much without nsjail.
    /// A key the policy sets holds for everyone.
    pub fn resolve(&self, beyond_kernel: bool) -> Allowed {
        Allowed {
            share_net: self.share_net,
            cap_add: self.cap_add.unwrap_or(!beyond_kernel),
            userns: self.userns.unwrap_or(!beyond_kernel),
            seccomp_none: self.seccomp_none,
            device_binds: self.device_binds,
        }
    }
}

/// Ceilings on what one sandbox may ask for, and on how many a user may run at once. `None`:
/// no ceiling. The resource limits themselves are requested per sandbox
/// (`SpawnRequest::limits`) and checked against these with [`Ceilings::check`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ceilings {
    /// Sandboxes one user may have running at the same time.
    pub max_sandboxes_per_user: Option<u32>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub cpu_time_secs: Option<u64>,
    pub wall_time_secs: Option<u64>,
    pub file_size_bytes: Option<u64>,
    pub open_files: Option<u64>,
}

/// A limit the policy can cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    MemoryBytes,
    Pids,
    CpuTimeSecs,
    WallTimeSecs,
    FileSizeBytes,
    OpenFiles,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::MemoryBytes => "memory_bytes",
            Limit::Pids => "pids",
            Limit::CpuTimeSecs => "cpu_time_secs",
            Limit::WallTimeSecs => "wall_time_secs",
            Limit::FileSizeBytes => "file_size_bytes",
            Limit::OpenFiles => "open_files",
        }
    }
}

impl Ceilings {
    pub fn ceiling(&self, which: Limit) -> Option<u64> {
        match which {
            Limit::MemoryBytes => self.memory_bytes,
            Limit::Pids => self.pids,
            Limit::CpuTimeSecs => self.cpu_time_secs,
            Limit::WallTimeSecs => self.wall_time_secs,
            Limit::FileSizeBytes => self.file_size_bytes,
            Limit::OpenFiles => self.open_files,
        }
    }

    /// The limit a sandbox gets: what it asked for if within the ceiling, the ceiling when it
    /// asked for nothing (`None`, unlimited), and a refusal when it asked for more.
    pub fn check(&self, which: Limit, requested: Option<u64>) -> Result<Option<u64>, Refusal> {
        match (self.ceiling(which), requested) {
            (Some(max), Some(v)) if v > max => Err(Refusal::OverCeiling {
                limit: which.name(),
                requested: v,
                max,
            }),
            (Some(max), None) => Ok(Some(max)),
            (_, v) => Ok(v),
        }
    }
}

/// `--memory-limit 1 GiB is above the policy's ceiling of 512 MiB (limits.memory_bytes)`: the
/// option the user typed and sizes as people write them, then the key the admin set.
fn over_ceiling(key: &str, requested: u64, max: u64) -> String {
    use crate::limits::human_size;
    let count = |n: u64| n.to_string();
    let (option, show): (&str, &dyn Fn(u64) -> String) = match key {
        "memory_bytes" => ("--memory-limit", &human_size),
        "pids" => ("--pids-limit", &count),
        // The request's time was rounded up to whole seconds to be compared: not worth showing.
        "cpu_time_secs" | "wall_time_secs" => {
            let option = if key == "cpu_time_secs" {
                "--time-limit"
            } else {
                "--wall-time-limit"
            };
            return format!("{option} is above the policy's ceiling of {max} s (limits.{key})");
        }
        "file_size_bytes" => ("--rlimit fsize", &human_size),
        "open_files" => ("--rlimit nofile", &count),
        _ => (key, &count),
    };
    format!(
        "{option} {} is above the policy's ceiling of {} (limits.{key})",
        show(requested),
        show(max)
    )
}

/// How deep the brackets and braces of TOML text nest, not counting those in strings or comments.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // The three-quote forms first: `"""` is not an empty string followed by a quote.
        if let Some(quote) = [r#"""""#, "'''", "\"", "'"]
            .into_iter()
            .find(|q| rest.starts_with(q))
        {
            rest = after_string(&rest[quote.len()..], quote);
            continue;
        }
        match c {
            '#' => {
                rest = rest.find('\n').map_or("", |end| &rest[end..]);
                continue;
            }
            '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    deepest
}

/// What follows the string that `rest` is inside of, which `quote` closes. Only `"` strings have
/// escapes. A string that never closes takes the rest of the text (the parser refuses it).
fn after_string<'a>(mut rest: &'a str, quote: &str) -> &'a str {
    loop {
        if let Some(after) = rest.strip_prefix(quote) {
            return after;
        }
        let mut chars = rest.chars();
        match chars.next() {
            None => return "",
            Some('\\') if quote.starts_with('"') => {
                chars.next();
            }
            Some(_) => {}
        }
        rest = chars.as_str();
    }
}

/// The TOML parser quotes what it did not expect (a key, say) as it was written: control characters in it
/// must not break the one-line message.
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

/// Which sub-ID ranges each user may map, besides their own uid and gid.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdRanges {
    /// A file in `/etc/subuid` format; empty: none.
    pub subuid: String,
    pub subgid: String,
    /// Grants written in the policy itself, added to the files'.
    pub uid: Vec<Grant>,
    pub gid: Vec<Grant>,
}

impl Default for IdRanges {
    fn default() -> Self {
        IdRanges {
            subuid: DEFAULT_SUBUID.into(),
            subgid: DEFAULT_SUBGID.into(),
            uid: Vec::new(),
            gid: Vec::new(),
        }
    }
}

/// `user` may map `count` ids outside starting at `start`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub user: Principal,
    pub start: u32,
    pub count: u32,
}

/// Why a request was refused by the policy. One line each, naming what was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the nsjail policy does not allow uid {0} to use the helper")]
    NotAllowed(u32),
    #[error(
        "the nsjail policy does not allow {flag}: an administrator can grant it with `allow.{key} = true` in {path}"
    )]
    Feature {
        flag: &'static str,
        /// The key under `[allow]` that grants it.
        key: &'static str,
        /// The policy file.
        path: &'static str,
    },
    #[error("{}", over_ceiling(limit, *requested, *max))]
    OverCeiling {
        limit: &'static str,
        requested: u64,
        max: u64,
    },
    #[error(
        "--map-{kind} {inside}:{outside}:{count}: outside ids {outside}..{end} are not yours to map (your own {kind} and the ranges the policy grants you: {granted})"
    )]
    NotYourIds {
        kind: &'static str,
        inside: u32,
        outside: u32,
        count: u32,
        end: u64,
        granted: String,
    },
}

/// The caller, as the kernel vouches for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Users and groups by name, from `/etc/passwd` and `/etc/group` (read only when the policy or
/// a sub-ID file uses names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accounts {
    /// (name, uid)
    pub users: Vec<(String, u32)>,
    /// (name, gid)
    pub groups: Vec<(String, u32)>,
}

impl Accounts {
    pub fn from_files(passwd: &str, group: &str) -> Accounts {
        Accounts {
            users: parse_name_id_file(passwd),
            groups: parse_name_id_file(group),
        }
    }

    fn uid_of(&self, name: &str) -> Option<u32> {
        self.users
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    fn gid_of(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// Whether `p` names user `uid`. A name that is not in `/etc/passwd` names nobody.
    pub fn is_user(&self, p: &Principal, uid: u32) -> bool {
        match p {
            Principal::Id(id) => *id == uid,
            Principal::Name(n) => match n.parse::<u32>() {
                Ok(id) => id == uid,
                Err(_) => self.uid_of(n) == Some(uid),
            },
        }
    }

    fn is_group(&self, p: &Principal, gid: u32) -> bool {
        match p {
            Principal::Id(id) => *id == gid,
            Principal::Name(n) => match n.parse::<u32>() {
                Ok(id) => id == gid,
                Err(_) => self.gid_of(n) == Some(gid),
            },
        }
    }
}

/// `name:x:id:...` lines (passwd and group share the first and third fields).
fn parse_name_id_file(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?.trim();
            let _ = f.next()?;
            let id = f.next()?.trim().parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then(|| (name.to_string(), id))
        })
        .collect()
}

/// One line of `/etc/subuid` or `/etc/subgid`: `owner:start:count`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubIdEntry {
    pub owner: Principal,
    pub start: u32,
    pub count: u32,
}

/// Parse a sub-ID file. Comments, blank and malformed lines grant nothing and are skipped, as
/// shadow's tools do.
pub fn parse_subid(text: &str) -> Vec<SubIdEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let mut f = l.split(':');
            let owner = f.next()?.trim();
            let start: u32 = f.next()?.trim().parse().ok()?;
            let count: u32 = f.next()?.trim().parse().ok()?;
            if f.next().is_some() || owner.is_empty() || count == 0 {
                return None;
            }
            start.checked_add(count - 1)?;
            let owner = match owner.parse::<u32>() {
                Ok(id) => Principal::Id(id),
                Err(_) => Principal::Name(owner.to_string()),
            };
            Some(SubIdEntry {
                owner,
                start,
                count,
            })
        })
        .collect()
}

impl Policy {
    /// Parse the policy file's text.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::Parse(format!(
                "policy: larger than {MAX_POLICY_BYTES} bytes"
            )));
        }
        if nesting_depth(text) > MAX_POLICY_NESTING {
            return Err(PolicyError::Parse(format!(
                "policy: arrays or tables nested deeper than {MAX_POLICY_NESTING}"
            )));
        }
        // basic_toml's message is one line ending "at line L column C" where it knows the place.
        let p: Policy = basic_toml::from_str(text)
            .map_err(|e| PolicyError::Parse(one_line(&format!("policy: {e}"))))?;
        for (field, path) in [
            ("id_ranges.subuid", &p.id_ranges.subuid),
            ("id_ranges.subgid", &p.id_ranges.subgid),
        ] {
            if !path.is_empty() && !path.starts_with('/') {
                return Err(PolicyError::Invalid {
                    field,
                    reason: format!("{path:?} is not an absolute path"),
                });
            }
        }
        for (field, grants) in [
            ("id_ranges.uid", &p.id_ranges.uid),
            ("id_ranges.gid", &p.id_ranges.gid),
        ] {
            for g in grants {
                if g.count == 0 || g.start.checked_add(g.count - 1).is_none() {
                    return Err(PolicyError::Invalid {
                        field,
                        reason: format!("range {}+{} is empty or overflows", g.start, g.count),
                    });
                }
            }
        }
        if p.limits.max_sandboxes_per_user == Some(0) {
            return Err(PolicyError::Invalid {
                field: "limits.max_sandboxes_per_user",
                reason: "0 would refuse everyone; use access to do that".into(),
            });
        }
        Ok(p)
    }

    /// Whether the policy names users or groups (and so needs `/etc/passwd` or `/etc/group`).
    pub fn uses_names(&self) -> bool {
        let named = |v: &Option<Vec<Principal>>| {
            v.iter()
                .flatten()
                .any(|p| matches!(p, Principal::Name(n) if n.parse::<u32>().is_err()))
        };
        named(&self.access.users)
            || named(&self.access.groups)
            || self
                .id_ranges
                .uid
                .iter()
                .chain(&self.id_ranges.gid)
                .any(|g| matches!(&g.user, Principal::Name(n) if n.parse::<u32>().is_err()))
    }

    /// May this caller use the helper at all?
    pub fn check_access(&self, who: &Who, db: &Accounts) -> Result<(), Refusal> {
        let a = &self.access;
        if a.users.is_none() && a.groups.is_none() {
            return Ok(());
        }
        let by_user = a.users.iter().flatten().any(|p| db.is_user(p, who.uid));
        let by_group = a.groups.iter().flatten().any(|p| {
            std::iter::once(&who.gid)
                .chain(&who.groups)
                .any(|g| db.is_group(p, *g))
        });
        if by_user || by_group {
            Ok(())
        } else {
            Err(Refusal::NotAllowed(who.uid))
        }
    }

    /// The features the request uses must be allowed (`f`, from [`Features::resolve`]);
    /// `path` is the policy file a refusal names.
    pub fn check_features(
        f: &Allowed,
        req: &SpawnRequest,
        path: &'static str,
    ) -> Result<(), Refusal> {
        let refuse = |flag, key| Err(Refusal::Feature { flag, key, path });
        if !req.namespaces.net && !f.share_net {
            return refuse("--share-net", "share_net");
        }
        if !req.caps.is_empty() && !f.cap_add {
            return refuse("--cap-add", "cap_add");
        }
        if req.allow_userns && !f.userns {
            return refuse("--allow-userns", "userns");
        }
        if req.seccomp == SeccompMode::Disabled && !f.seccomp_none {
            return refuse("--seccomp none", "seccomp_none");
        }
        let dev_bind = |op: &crate::mounts::MountOp| {
            matches!(
                op,
                crate::mounts::MountOp::Bind {
                    kind: crate::mounts::BindKind::Dev,
                    ..
                }
            )
        };
        if req.mounts.iter().any(dev_bind) && !f.device_binds {
            return refuse("--dev-bind", "device_binds");
        }
        Ok(())
    }

    /// The request's limits within the policy's ceilings: a limit asked for above its ceiling
    /// is refused; one not asked for gets the ceiling.
    pub fn limits_within(
        &self,
        asked: &crate::request::Limits,
    ) -> Result<crate::request::Limits, Refusal> {
        use crate::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting};
        let c = &self.limits;
        let mut l = asked.clone();
        l.memory_bytes = c.check(Limit::MemoryBytes, l.memory_bytes)?;
        l.pids = c.check(Limit::Pids, l.pids)?;
        let secs = |us: Option<u64>| us.map(|us| us.div_ceil(1_000_000));
        let us = |s: Option<u64>| s.map(|s| s.saturating_mul(1_000_000));
        if c.check(Limit::CpuTimeSecs, secs(l.cpu_time_us))?.is_some() && l.cpu_time_us.is_none() {
            l.cpu_time_us = us(c.cpu_time_secs);
        }
        if c.check(Limit::WallTimeSecs, secs(l.wall_time_us))?
            .is_some()
            && l.wall_time_us.is_none()
        {
            l.wall_time_us = us(c.wall_time_secs);
        }
        for (which, resource) in [
            (Limit::FileSizeBytes, RlimitResource::Fsize),
            (Limit::OpenFiles, RlimitResource::Nofile),
        ] {
            let Some(max) = c.ceiling(which) else {
                continue;
            };
            match l.rlimits.iter().find(|r| r.resource == resource) {
                // The hard limit is what the payload could raise itself to.
                Some(r) if r.hard == RLIM_INFINITY || r.hard > max => {
                    return Err(Refusal::OverCeiling {
                        limit: which.name(),
                        requested: r.hard,
                        max,
                    });
                }
                Some(_) => {}
                None => l.rlimits.push(RlimitSetting {
                    resource,
                    soft: max,
                    hard: max,
                }),
            }
        }
        Ok(l)
    }
}

/// Where the supervisor sends SIGKILL whatever grace `--kill-grace` asked for: the policy's
/// CPU and wall-clock ceilings, in microseconds (`None`: no ceiling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardStops {
    pub cpu_time_us: Option<u64>,
    pub wall_time_us: Option<u64>,
}

impl Policy {
    /// The ceilings a sandbox is killed at, grace or not.
    pub fn hard_stops(&self) -> HardStops {
        let us = |s: Option<u64>| s.map(|s| s.saturating_mul(1_000_000));
        HardStops {
            cpu_time_us: us(self.limits.cpu_time_secs),
            wall_time_us: us(self.limits.wall_time_secs),
        }
    }
}

/// The outside ids a caller may map: their own id, then granted ranges (start, count).
pub fn granted_ranges(
    own: u32,
    uid: u32,
    file: &[SubIdEntry],
    grants: &[Grant],
    db: &Accounts,
) -> Vec<(u32, u32)> {
    let mut out = vec![(own, 1)];
    for e in file {
        if db.is_user(&e.owner, uid) {
            out.push((e.start, e.count));
        }
    }
    for g in grants {
        if db.is_user(&g.user, uid) {
            out.push((g.start, g.count));
        }
    }
    out
}

/// Every line of `map` must lie, outside, entirely within one of `allowed` (as `newuidmap`
/// requires). Returns whether any line uses more than the caller's own id (`allowed[0]`).
pub fn check_map(
    kind: &'static str,
    map: &[IdRange],
    allowed: &[(u32, u32)],
) -> Result<bool, Refusal> {
    let mut beyond_own = false;
    for r in map {
        let lo = r.outside as u64;
        let hi = lo + r.count as u64;
        let fits = |(s, c): &(u32, u32)| lo >= *s as u64 && hi <= *s as u64 + *c as u64;
        match allowed.iter().position(fits) {
            Some(0) => {}
            Some(_) => beyond_own = true,
            None => {
                let granted = allowed
                    .iter()
                    .map(|(s, c)| {
                        if *c == 1 {
                            s.to_string()
                        } else {
                            format!("{s}..{}", *s as u64 + *c as u64)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Refusal::NotYourIds {
                    kind,
                    inside: r.inside,
                    outside: r.outside,
                    count: r.count,
                    end: hi,
                    granted,
                });
            }
        }
    }
    Ok(beyond_own)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::CapSet;

    const FULL: &str = r#"
        [access]
        users = ["alice", 1005, "1006"]
        groups = ["sandbox"]

        [allow]
        share_net = false
        cap_add = false
        userns = false
        seccomp_none = false
        device_binds = false

        [limits]
        max_sandboxes_per_user = 2
        memory_bytes = 1073741824
        pids = 256

        [id_ranges]
        subuid = "/etc/subuid"
        subgid = ""
        uid = [{ user = "bob", start = 300000, count = 10 }]
    "#;

    fn db() -> Accounts {
        Accounts::from_files(
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/:/bin/sh\n# c\n\nbad line\n",
            "root:x:0:\nsandbox:x:2000:carol\nalice:x:1000:\n",
        )
    }

    fn who(uid: u32, gid: u32, groups: &[u32]) -> Who {
        Who {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    const PATH: &str = "/etc/nsjail/policy.toml";

    fn feature(flag: &'static str, key: &'static str) -> Refusal {
        Refusal::Feature {
            flag,
            key,
            path: PATH,
        }
    }

    #[test]
    fn an_empty_policy_is_the_default_and_grants_no_capabilities_or_user_namespaces() {
        let p = Policy::parse("").unwrap();
        assert_eq!(p, Policy::default());
        assert!(
            p.check_access(&who(4242, 4242, &[]), &Accounts::default())
                .is_ok()
        );
        let mut req = SpawnRequest::new(vec!["x".into()]);
        req.namespaces.net = false;
        req.seccomp = SeccompMode::Disabled;
        let users = p.allow.resolve(true);
        assert!(Policy::check_features(&users, &req, PATH).is_ok());
        let mut caps = req.clone();
        caps.caps = CapSet::ALL;
        let mut userns = req.clone();
        userns.allow_userns = true;
        assert_eq!(
            Policy::check_features(&users, &caps, PATH),
            Err(feature("--cap-add", "cap_add"))
        );
        assert_eq!(
            Policy::check_features(&users, &userns, PATH),
            Err(feature("--allow-userns", "userns"))
        );
        // The refusal names the key that grants it, in one line.
        let msg = feature("--cap-add", "cap_add").to_string();
        assert_eq!(
            msg,
            "the nsjail policy does not allow --cap-add: an administrator can grant it with \
             `allow.cap_add = true` in /etc/nsjail/policy.toml"
        );
        // Where the helper gives nothing beyond the kernel (no privilege, or a root caller),
        // both stay allowed.
        let same = p.allow.resolve(false);
        assert!(Policy::check_features(&same, &caps, PATH).is_ok());
        assert!(Policy::check_features(&same, &userns, PATH).is_ok());
        // A grant holds for users; an explicit refusal holds for everyone.
        let granted = Policy::parse("[allow]\ncap_add = true\nuserns = true\n").unwrap();
        assert!(Policy::check_features(&granted.allow.resolve(true), &caps, PATH).is_ok());
        assert!(Policy::check_features(&granted.allow.resolve(true), &userns, PATH).is_ok());
        let denied = Policy::parse("allow.cap_add = false\n").unwrap();
        assert!(Policy::check_features(&denied.allow.resolve(false), &caps, PATH).is_err());
        assert_eq!(p.id_ranges.subuid, "/etc/subuid");
        assert_eq!(p.limits.max_sandboxes_per_user, None);
    }

    #[test]
    fn landlock_can_be_required() {
        assert!(!Policy::default().require.landlock);
        let p = Policy::parse("[require]\nlandlock = true\n").unwrap();
        assert!(p.require.landlock);
        assert!(Policy::parse("[require]\nseccomp = true\n").is_err());
    }

    #[test]
    fn the_full_policy() {
        let p = Policy::parse(FULL).unwrap();
        assert!(p.uses_names());
        let db = db();
        assert!(p.check_access(&who(1000, 1000, &[]), &db).is_ok());
        assert!(p.check_access(&who(1005, 1, &[]), &db).is_ok());
        assert!(p.check_access(&who(1006, 1, &[]), &db).is_ok());
        assert!(p.check_access(&who(3000, 3000, &[2000]), &db).is_ok());
        assert!(p.check_access(&who(3000, 2000, &[]), &db).is_ok());
        assert_eq!(
            p.check_access(&who(1001, 1001, &[5]), &db),
            Err(Refusal::NotAllowed(1001))
        );
        let base = SpawnRequest::new(vec!["x".into()]);
        let f = p.allow.resolve(false);
        assert!(Policy::check_features(&f, &base, PATH).is_ok());
        let mut r = base.clone();
        r.namespaces.net = false;
        assert_eq!(
            Policy::check_features(&f, &r, PATH),
            Err(feature("--share-net", "share_net"))
        );
        let mut r = base.clone();
        r.caps.insert(21);
        assert_eq!(
            Policy::check_features(&f, &r, PATH),
            Err(feature("--cap-add", "cap_add"))
        );
        let mut r = base.clone();
        r.allow_userns = true;
        assert_eq!(
            Policy::check_features(&f, &r, PATH),
            Err(feature("--allow-userns", "userns"))
        );
        let mut r = base;
        r.seccomp = SeccompMode::Disabled;
        assert_eq!(
            Policy::check_features(&f, &r, PATH),
            Err(feature("--seccomp none", "seccomp_none"))
        );
        assert_eq!(p.limits.max_sandboxes_per_user, Some(2));
        assert_eq!(p.id_ranges.subgid, "");
    }

    #[test]
    fn a_refusal_names_the_option_and_a_size_people_read() {
        use crate::request::Limits;
        let p = Policy::parse("[limits]\nmemory_bytes = 536870912\nwall_time_secs = 2\n").unwrap();
        let msg = |l: Limits| p.limits_within(&l).unwrap_err().to_string();
        assert_eq!(
            msg(Limits {
                memory_bytes: Some(1 << 30),
                ..Limits::default()
            }),
            "--memory-limit 1 GiB is above the policy's ceiling of 512 MiB (limits.memory_bytes)"
        );
        assert_eq!(
            msg(Limits {
                wall_time_us: Some(2_500_000),
                ..Limits::default()
            }),
            "--wall-time-limit is above the policy's ceiling of 2 s (limits.wall_time_secs)"
        );
        // Each other ceiling by its own option: a count as a count, a size as a size.
        use crate::limits::{RlimitResource, RlimitSetting};
        let p = Policy::parse("[limits]\npids = 16\nfile_size_bytes = 1048576\nopen_files = 64\n")
            .unwrap();
        let msg = |l: Limits| p.limits_within(&l).unwrap_err().to_string();
        assert_eq!(
            msg(Limits {
                pids: Some(17),
                ..Limits::default()
            }),
            "--pids-limit 17 is above the policy's ceiling of 16 (limits.pids)"
        );
        let rlimit = |resource, hard| Limits {
            rlimits: vec![RlimitSetting {
                resource,
                soft: hard,
                hard,
            }],
            ..Limits::default()
        };
        assert_eq!(
            msg(rlimit(RlimitResource::Fsize, 2 << 20)),
            "--rlimit fsize 2 MiB is above the policy's ceiling of 1 MiB (limits.file_size_bytes)"
        );
        assert_eq!(
            msg(rlimit(RlimitResource::Nofile, 65)),
            "--rlimit nofile 65 is above the policy's ceiling of 64 (limits.open_files)"
        );
    }

    #[test]
    fn the_time_ceilings_are_the_hard_stops() {
        assert_eq!(Policy::default().hard_stops(), HardStops::default());
        let p = Policy::parse("[limits]\ncpu_time_secs = 2\nwall_time_secs = 5\n").unwrap();
        assert_eq!(
            p.hard_stops(),
            HardStops {
                cpu_time_us: Some(2_000_000),
                wall_time_us: Some(5_000_000)
            }
        );
    }

    #[test]
    fn ceilings() {
        let p = Policy::parse(FULL).unwrap();
        let c = p.limits;
        assert_eq!(c.check(Limit::Pids, Some(10)), Ok(Some(10)));
        assert_eq!(c.check(Limit::Pids, None), Ok(Some(256)));
        assert!(matches!(
            c.check(Limit::MemoryBytes, Some(1 << 40)),
            Err(Refusal::OverCeiling { .. })
        ));
        assert_eq!(c.check(Limit::OpenFiles, Some(5)), Ok(Some(5)));
        assert_eq!(c.check(Limit::OpenFiles, None), Ok(None));
    }

    #[test]
    fn limits_within_ceilings() {
        use crate::limits::{RlimitResource, RlimitSetting};
        use crate::request::Limits;
        let p =
            Policy::parse("[limits]\nmemory_bytes = 1000\nwall_time_secs = 2\nopen_files = 64\n")
                .unwrap();
        let l = p.limits_within(&Limits::default()).unwrap();
        assert_eq!(l.memory_bytes, Some(1000));
        assert_eq!(l.wall_time_us, Some(2_000_000));
        assert_eq!(l.cpu_time_us, None);
        assert!(l.rlimits.contains(&RlimitSetting {
            resource: RlimitResource::Nofile,
            soft: 64,
            hard: 64
        }));
        let asked = Limits {
            wall_time_us: Some(1_500_000),
            ..Limits::default()
        };
        assert_eq!(
            p.limits_within(&asked).unwrap().wall_time_us,
            Some(1_500_000)
        );
        for asked in [
            Limits {
                memory_bytes: Some(1001),
                ..Limits::default()
            },
            Limits {
                wall_time_us: Some(2_000_001),
                ..Limits::default()
            },
            Limits {
                rlimits: vec![RlimitSetting {
                    resource: RlimitResource::Nofile,
                    soft: 10,
                    hard: 65,
                }],
                ..Limits::default()
            },
        ] {
            assert!(matches!(
                p.limits_within(&asked),
                Err(Refusal::OverCeiling { .. })
            ));
        }
        // Without a policy nothing changes.
        let none = Policy::default();
        assert_eq!(
            none.limits_within(&asked_default()).unwrap(),
            asked_default()
        );
    }

    fn asked_default() -> crate::request::Limits {
        crate::request::Limits::default()
    }

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        assert_eq!(nesting_depth("a = [[1], [2]]\n[t]\n[[u]]\n"), 2);
        assert_eq!(nesting_depth("a = \"[[[\"\nb = [[[1]]]\n"), 3);
        // An escaped quote does not end a basic string.
        assert_eq!(nesting_depth("a = \"\\\"[[\"\nb = [1]\n"), 1);
        // A literal string has no escapes: its backslash is the last character.
        assert_eq!(nesting_depth("a = 'C:\\'\nb = [[[1]]]\n"), 3);
        assert_eq!(
            nesting_depth("a = \"\"\"\n[[\"\"\" # [[[\nb = {c = [1]}\n"),
            2
        );
        assert_eq!(nesting_depth("a = '''[[[''' \nb = 1"), 0);
        assert_eq!(nesting_depth("a = \"[[[ never closed"), 0);
    }

    #[test]
    fn bad_policies_are_one_line_errors() {
        for (text, want) in [
            ("[allow]\nshare_nett = true\n", "unknown field"),
            ("[access]\nusers = 5\n", "line 2"),
            ("this is not toml", "policy:"),
            (
                "[id_ranges]\nsubuid = \"etc/subuid\"\n",
                "not an absolute path",
            ),
            (
                "[id_ranges]\nuid = [{ user = 1, start = 4294967295, count = 2 }]\n",
                "overflows",
            ),
            ("[limits]\nmax_sandboxes_per_user = 0\n", "refuse everyone"),
            ("[allow]\n\"a\\nb\" = true\n", "unknown field"),
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn subid_files_and_map_checks() {
        let entries = parse_subid(
            "# comment\nalice:100000:65536\n1001:200000:10\nbad\nx:1:0\ny:4294967295:2\nz:5:6:7\n",
        );
        assert_eq!(entries.len(), 2);
        let db = db();
        let alice = granted_ranges(1000, 1000, &entries, &[], &db);
        assert_eq!(alice, vec![(1000, 1), (100000, 65536)]);
        let p = Policy::parse(FULL).unwrap();
        let bob = granted_ranges(1001, 1001, &entries, &p.id_ranges.uid, &db);
        assert_eq!(bob, vec![(1001, 1), (200000, 10), (300000, 10)]);

        let r = |inside, outside, count| IdRange {
            inside,
            outside,
            count,
        };
        assert_eq!(check_map("uid", &[r(0, 1000, 1)], &alice), Ok(false));
        assert_eq!(
            check_map("uid", &[r(0, 1000, 1), r(1, 100000, 65536)], &alice),
            Ok(true)
        );
        // One past the end, a range straddling two grants, someone else's ids: refused.
        for bad in [r(1, 100000, 65537), r(0, 999, 2), r(0, 200000, 1)] {
            let e = check_map("uid", &[bad], &alice).unwrap_err().to_string();
            assert!(e.contains("not yours to map"), "{e}");
            assert!(e.contains("1000, 100000..165536"), "{e}");
        }
        // Without any grant only the own id passes.
        let own = granted_ranges(1000, 1000, &[], &[], &Accounts::default());
        assert!(check_map("gid", &[r(0, 100000, 1)], &own).is_err());
    }
}
