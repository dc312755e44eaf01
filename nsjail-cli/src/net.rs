//! `--net` and `--forward-port`: how the sandbox reaches the network.

use anyhow::{Result, bail};
use nsjail_core::{Pasta, PortForward, SpawnRequest};

use crate::args::{NetMode, RunArgs};

/// `PORT` or `HOSTPORT:SANDBOXPORT`.
pub fn parse_forward(spec: &str) -> Result<PortForward> {
    let port = |s: &str| -> Result<u16> {
        match s.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => bail!("--forward-port {spec}: not a port (1 to 65535) or HOSTPORT:SANDBOXPORT"),
        }
    };
    Ok(match spec.split_once(':') {
        Some((h, s)) => PortForward {
            host: port(h)?,
            sandbox: port(s)?,
        },
        None => {
            let p = port(spec)?;
            PortForward {
                host: p,
                sandbox: p,
            }
        }
    })
}

/// The network mode the options ask for.
pub fn mode(run: &RunArgs) -> Result<NetMode> {
    if run.share_net && run.net == NetMode::Pasta {
        bail!("--share-net and --net pasta contradict each other: give one of them");
    }
    Ok(if run.share_net {
        NetMode::Host
    } else {
        run.net
    })
}

/// Set the request's network fields.
pub fn apply(run: &RunArgs, req: &mut SpawnRequest) -> Result<()> {
    let mode = mode(run)?;
    if !run.forward_port.is_empty() && mode != NetMode::Pasta {
        bail!(
            "--forward-port needs --net pasta (with --net host the sandbox's ports are the host's)"
        );
    }
    match mode {
        NetMode::None => {}
        NetMode::Host => req.namespaces.net = false,
        NetMode::Pasta => {
            req.namespaces.net = true;
            req.pasta = Some(Pasta {
                forward_tcp: run
                    .forward_port
                    .iter()
                    .map(|s| parse_forward(s))
                    .collect::<Result<_>>()?,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards() {
        assert_eq!(
            parse_forward("8080").unwrap(),
            PortForward {
                host: 8080,
                sandbox: 8080
            }
        );
        assert_eq!(
            parse_forward("8080:80").unwrap(),
            PortForward {
                host: 8080,
                sandbox: 80
            }
        );
        for bad in ["0", "x", "70000", "1:", ":1", "1:2:3"] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }
}
