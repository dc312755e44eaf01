//! Resource limits as the request carries them (exact integers), and sizes and seconds shown
//! in messages. The CLI parses them as people write them (its `limit_args`).

use serde::{Deserialize, Serialize};

/// `RLIM_INFINITY` on Linux: no limit.
pub const RLIM_INFINITY: u64 = u64::MAX;

/// Every `RLIMIT_*` of Linux, by the name `--rlimit` takes (`prlimit(1)` spells them the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RlimitResource {
    As,
    Core,
    Cpu,
    Data,
    Fsize,
    Locks,
    Memlock,
    Msgqueue,
    Nice,
    Nofile,
    Nproc,
    Rss,
    Rtprio,
    Rttime,
    Sigpending,
    Stack,
}

impl RlimitResource {
    pub const ALL: [RlimitResource; 16] = [
        RlimitResource::As,
        RlimitResource::Core,
        RlimitResource::Cpu,
        RlimitResource::Data,
        RlimitResource::Fsize,
        RlimitResource::Locks,
        RlimitResource::Memlock,
        RlimitResource::Msgqueue,
        RlimitResource::Nice,
        RlimitResource::Nofile,
        RlimitResource::Nproc,
        RlimitResource::Rss,
        RlimitResource::Rtprio,
        RlimitResource::Rttime,
        RlimitResource::Sigpending,
        RlimitResource::Stack,
    ];

    /// The lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RlimitResource::As => "as",
            RlimitResource::Core => "core",
            RlimitResource::Cpu => "cpu",
            RlimitResource::Data => "data",
            RlimitResource::Fsize => "fsize",
            RlimitResource::Locks => "locks",
            RlimitResource::Memlock => "memlock",
            RlimitResource::Msgqueue => "msgqueue",
            RlimitResource::Nice => "nice",
            RlimitResource::Nofile => "nofile",
            RlimitResource::Nproc => "nproc",
            RlimitResource::Rss => "rss",
            RlimitResource::Rtprio => "rtprio",
            RlimitResource::Rttime => "rttime",
            RlimitResource::Sigpending => "sigpending",
            RlimitResource::Stack => "stack",
        }
    }
}

/// One `setrlimit` the payload gets before exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RlimitSetting {
    pub resource: RlimitResource,
    /// [`RLIM_INFINITY`] for no limit.
    pub soft: u64,
    pub hard: u64,
}

/// `1.5 s` style rendering of microseconds, for messages.
pub fn show_seconds(us: u64) -> String {
    format!("{}.{:03} s", us / 1_000_000, (us % 1_000_000) / 1000)
}

/// A size in bytes in the largest binary unit that keeps it exact, for messages: `64 MiB`,
/// `1536 KiB`, `100 bytes`.
pub fn human_size(bytes: u64) -> String {
    if bytes == RLIM_INFINITY {
        return "unlimited".into();
    }
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_in_messages() {
        assert_eq!(show_seconds(1_234_567), "1.234 s");
        assert_eq!(human_size(64 << 20), "64 MiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(1536 << 10), "1536 KiB");
        assert_eq!(human_size(100), "100 bytes");
        assert_eq!(human_size(RLIM_INFINITY), "unlimited");
    }
}
