//! `--rlimit`: the payload's resource limits, set in the payload just before exec.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nsjail_core::limits::{RLIM_INFINITY, RlimitResource, RlimitSetting};

use crate::error::{HelperError, Result};

/// The request's settings plus our defaults for what it leaves out: no core dumps (`core` 0:0),
/// so a crashing payload never writes a core file anywhere.
pub fn with_defaults(asked: &[RlimitSetting]) -> Vec<RlimitSetting> {
    let mut v = asked.to_vec();
    if !v.iter().any(|r| r.resource == RlimitResource::Core) {
        v.push(RlimitSetting {
            resource: RlimitResource::Core,
            soft: 0,
            hard: 0,
        });
    }
    v
}

pub fn resource(r: RlimitResource) -> Resource {
    match r {
        RlimitResource::As => Resource::RLIMIT_AS,
        RlimitResource::Core => Resource::RLIMIT_CORE,
        RlimitResource::Cpu => Resource::RLIMIT_CPU,
        RlimitResource::Data => Resource::RLIMIT_DATA,
        RlimitResource::Fsize => Resource::RLIMIT_FSIZE,
        RlimitResource::Locks => Resource::RLIMIT_LOCKS,
        RlimitResource::Memlock => Resource::RLIMIT_MEMLOCK,
        RlimitResource::Msgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitResource::Nice => Resource::RLIMIT_NICE,
        RlimitResource::Nofile => Resource::RLIMIT_NOFILE,
        RlimitResource::Nproc => Resource::RLIMIT_NPROC,
        RlimitResource::Rss => Resource::RLIMIT_RSS,
        RlimitResource::Rtprio => Resource::RLIMIT_RTPRIO,
        RlimitResource::Rttime => Resource::RLIMIT_RTTIME,
        RlimitResource::Sigpending => Resource::RLIMIT_SIGPENDING,
        RlimitResource::Stack => Resource::RLIMIT_STACK,
    }
}

fn show(v: u64) -> String {
    if v == RLIM_INFINITY {
        "inf".into()
    } else {
        v.to_string()
    }
}

/// `setrlimit` each; the first failure is an error naming the limit and, for the usual cause
/// (raising a hard limit, which needs privilege the sandbox does not have), the ceiling.
pub fn apply(settings: &[RlimitSetting]) -> Result<()> {
    for s in settings {
        let res = resource(s.resource);
        if let Err(e) = setrlimit(res, s.soft, s.hard) {
            let mut msg = format!(
                "setrlimit({}, {}:{}): {}",
                s.resource.name(),
                show(s.soft),
                show(s.hard),
                e.desc()
            );
            if e == nix::errno::Errno::EPERM
                && let Ok((_, hard)) = getrlimit(res)
            {
                msg.push_str(&format!(
                    " (a hard limit cannot be raised above the one you have, {})",
                    show(hard)
                ));
            }
            return Err(HelperError::Refused(msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_dumps_are_off_unless_asked_for() {
        let d = with_defaults(&[]);
        assert_eq!(
            d,
            [RlimitSetting {
                resource: RlimitResource::Core,
                soft: 0,
                hard: 0
            }]
        );
        let asked = [RlimitSetting {
            resource: RlimitResource::Core,
            soft: 1 << 20,
            hard: RLIM_INFINITY,
        }];
        assert_eq!(with_defaults(&asked), asked);
        assert_eq!(show(RLIM_INFINITY), "inf");
    }
}
