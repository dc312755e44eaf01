//! Limits as people write them on the command line and in profiles (`nofile=1024:4096`, `64M`,
//! `1.5`), parsed into the exact integers the request carries.

use nsjail_core::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting};
use thiserror::Error;

/// By name, case-insensitive, with or without the `RLIMIT_` prefix.
pub fn rlimit_resource(name: &str) -> Option<RlimitResource> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("rlimit_").unwrap_or(&lower);
    RlimitResource::ALL.into_iter().find(|r| r.name() == bare)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LimitParseError {
    #[error("expected NAME=SOFT[:HARD], e.g. nofile=1024:4096")]
    RlimitSyntax,
    #[error("unknown resource limit {name:?} (known: {known})")]
    UnknownRlimit { name: String, known: String },
    #[error("{0:?} is negative; limits are 0 or more")]
    Negative(String),
    #[error("{0:?} is not a number (digits with an optional K, M, G or T suffix, or `inf`)")]
    NotANumber(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
    #[error("{0:?} is not a number of seconds (e.g. 1, 0.5, 2.25)")]
    NotSeconds(String),
    #[error("soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard { soft: String, hard: String },
}

/// A size or count: decimal digits with an optional binary suffix `K`, `M`, `G`, `T`
/// (case-insensitive, an optional trailing `B`/`iB` allowed: `64M`, `64MiB`, `1g`).
pub fn parse_size(s: &str) -> Result<u64, LimitParseError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(LimitParseError::Negative(s.to_string()));
    }
    let lower = t.to_ascii_lowercase();
    const UNITS: [(&str, u32); 13] = [
        ("kib", 10),
        ("mib", 20),
        ("gib", 30),
        ("tib", 40),
        ("kb", 10),
        ("mb", 20),
        ("gb", 30),
        ("tb", 40),
        ("k", 10),
        ("m", 20),
        ("g", 30),
        ("t", 40),
        ("b", 0),
    ];
    let (digits, shift) = UNITS
        .iter()
        .find_map(|(unit, shift)| lower.strip_suffix(unit).map(|d| (d, *shift)))
        .unwrap_or((lower.as_str(), 0));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LimitParseError::NotANumber(s.to_string()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| LimitParseError::TooLarge(s.to_string()))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| LimitParseError::TooLarge(s.to_string()))
}

/// An rlimit value: a size ([`parse_size`]) or `inf` / `unlimited` / `infinity`.
pub fn parse_rlimit_value(s: &str) -> Result<u64, LimitParseError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "inf" | "infinity" | "unlimited" => Ok(RLIM_INFINITY),
        _ => {
            let v = parse_size(s)?;
            if v == RLIM_INFINITY {
                return Err(LimitParseError::TooLarge(s.to_string()));
            }
            Ok(v)
        }
    }
}

/// `NAME=SOFT[:HARD]`; without `:HARD` the hard limit is the soft one.
pub fn parse_rlimit(spec: &str) -> Result<RlimitSetting, LimitParseError> {
    let (name, values) = spec.split_once('=').ok_or(LimitParseError::RlimitSyntax)?;
    let resource = rlimit_resource(name.trim()).ok_or_else(|| LimitParseError::UnknownRlimit {
        name: name.to_string(),
        known: RlimitResource::ALL.map(RlimitResource::name).join(", "),
    })?;
    let (soft_s, hard_s) = match values.split_once(':') {
        Some((s, h)) => (s, h),
        None => (values, values),
    };
    if soft_s.trim().is_empty() || hard_s.trim().is_empty() {
        return Err(LimitParseError::RlimitSyntax);
    }
    let soft = parse_rlimit_value(soft_s)?;
    let hard = parse_rlimit_value(hard_s)?;
    if soft > hard {
        return Err(LimitParseError::SoftAboveHard {
            soft: soft_s.to_string(),
            hard: hard_s.to_string(),
        });
    }
    Ok(RlimitSetting {
        resource,
        soft,
        hard,
    })
}

/// Seconds, with a fraction (`1`, `0.5`, `2.250`), to whole microseconds.
pub fn parse_seconds(s: &str) -> Result<u64, LimitParseError> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(LimitParseError::Negative(s.to_string()));
    }
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(LimitParseError::NotSeconds(s.to_string()));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| LimitParseError::TooLarge(s.to_string()))?
    };
    // Microseconds: the first six fractional digits count, the rest round down.
    let mut frac_us = 0u64;
    for (i, b) in frac.bytes().take(6).enumerate() {
        frac_us += u64::from(b - b'0') * 10u64.pow(5 - i as u32);
    }
    whole
        .checked_mul(1_000_000)
        .and_then(|us| us.checked_add(frac_us))
        .ok_or_else(|| LimitParseError::TooLarge(s.to_string()))
}

/// A fraction of CPUs (`0.5`, `2`) to thousandths of a CPU.
pub fn parse_cpus(s: &str) -> Result<u64, LimitParseError> {
    // Same syntax as seconds; 1 CPU = 1,000,000 "micro-CPUs", kept to thousandths.
    parse_seconds(s)
        .map(|micro| micro / 1000)
        .map_err(|e| match e {
            LimitParseError::NotSeconds(v) => LimitParseError::NotANumber(v),
            other => other,
        })
}

/// Seconds as people write them, for messages: `1 s`, `1.5 s`, `0.25 s` (to the millisecond).
pub fn human_seconds(us: u64) -> String {
    let ms = us.div_ceil(1000);
    let frac = format!("{:03}", ms % 1000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{} s", ms / 1000)
    } else {
        format!("{}.{frac} s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("100b"), Ok(100));
        for bad in ["", "M", "1.5M", "x", "12Q", "1 M", "0x10", "iB", "1kk"] {
            assert!(
                matches!(parse_size(bad), Err(LimitParseError::NotANumber(_))),
                "{bad:?}: {:?}",
                parse_size(bad)
            );
        }
        assert!(matches!(
            parse_size("-1"),
            Err(LimitParseError::Negative(_))
        ));
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(LimitParseError::TooLarge(_))
        ));
        assert!(matches!(
            parse_size("17000000000T"),
            Err(LimitParseError::TooLarge(_))
        ));
    }

    #[test]
    fn rlimits() {
        assert_eq!(
            parse_rlimit("nofile=1024:4096"),
            Ok(RlimitSetting {
                resource: RlimitResource::Nofile,
                soft: 1024,
                hard: 4096
            })
        );
        assert_eq!(
            parse_rlimit("fsize=1M"),
            Ok(RlimitSetting {
                resource: RlimitResource::Fsize,
                soft: 1 << 20,
                hard: 1 << 20
            })
        );
        assert_eq!(
            parse_rlimit("RLIMIT_STACK=8M:inf").map(|r| (r.resource, r.hard)),
            Ok((RlimitResource::Stack, RLIM_INFINITY))
        );
        assert_eq!(
            parse_rlimit("core=unlimited").map(|r| r.soft),
            Ok(RLIM_INFINITY)
        );
        for name in RlimitResource::ALL.map(RlimitResource::name) {
            assert!(parse_rlimit(&format!("{name}=1")).is_ok(), "{name}");
        }
        assert!(matches!(
            parse_rlimit("bogus=1"),
            Err(LimitParseError::UnknownRlimit { .. })
        ));
        assert!(
            parse_rlimit("bogus=1")
                .unwrap_err()
                .to_string()
                .contains("nofile")
        );
        for bad in ["nofile", "nofile=", "nofile=1:", "nofile=:1", "=1"] {
            assert!(parse_rlimit(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_rlimit("nofile=-1"),
            Err(LimitParseError::Negative(_))
        ));
        assert!(matches!(
            parse_rlimit("nofile=abc"),
            Err(LimitParseError::NotANumber(_))
        ));
        assert!(matches!(
            parse_rlimit("nofile=10:5"),
            Err(LimitParseError::SoftAboveHard { .. })
        ));
        assert!(matches!(
            parse_rlimit("nofile=inf:5"),
            Err(LimitParseError::SoftAboveHard { .. })
        ));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1"), Ok(1_000_000));
        assert_eq!(parse_seconds("0.5"), Ok(500_000));
        assert_eq!(parse_seconds(".25"), Ok(250_000));
        assert_eq!(parse_seconds("2."), Ok(2_000_000));
        assert_eq!(parse_seconds("1.0000019"), Ok(1_000_001));
        assert_eq!(parse_seconds("0"), Ok(0));
        for bad in ["", ".", "1s", "abc", "1e3", "1.2.3", "+1"] {
            assert!(
                matches!(parse_seconds(bad), Err(LimitParseError::NotSeconds(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_seconds("-1"),
            Err(LimitParseError::Negative(_))
        ));
        assert!(matches!(
            parse_seconds("99999999999999999999"),
            Err(LimitParseError::TooLarge(_))
        ));
        assert_eq!(human_seconds(1_000_000), "1 s");
        assert_eq!(human_seconds(1_500_000), "1.5 s");
        assert_eq!(human_seconds(250_000), "0.25 s");
        assert_eq!(human_seconds(1), "0.001 s");
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("0.5"), Ok(500));
        assert_eq!(parse_cpus("2"), Ok(2000));
        assert_eq!(parse_cpus("0.015"), Ok(15));
        assert!(matches!(
            parse_cpus("half"),
            Err(LimitParseError::NotANumber(_))
        ));
        assert!(matches!(
            parse_cpus("-1"),
            Err(LimitParseError::Negative(_))
        ));
    }
}
