//! Where the run report goes (`--status-json FILE`, `--status-fd FD`, `--meta FILE`). Every
//! destination is opened before the sandbox starts, so one that cannot be written is an error
//! before anything runs, not a lost report afterwards.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::status_report::RunReport;
use anyhow::{Context, Result};

use crate::args::RunArgs;

pub struct Sinks {
    json: Vec<(String, File)>,
    meta: Option<(String, File)>,
}

fn create(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("cannot create report file {}", path.display()))
}

/// A writable handle on our descriptor `fd`. Stdout and stderr are duplicated (the same open
/// file, whoever created it); any other number is reopened through /proc, so that this command
/// needs no unsafe code to adopt a raw descriptor — append, so a file keeps what it had.
fn adopt(fd: u32) -> std::io::Result<File> {
    let dup = |h: std::os::fd::BorrowedFd<'_>| {
        nix::unistd::dup(h)
            .map(File::from)
            .map_err(std::io::Error::from)
    };
    match fd {
        1 => dup(std::os::fd::AsFd::as_fd(&std::io::stdout())),
        2 => dup(std::os::fd::AsFd::as_fd(&std::io::stderr())),
        _ => OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{fd}")),
    }
}

impl Sinks {
    pub fn open(run: &RunArgs) -> Result<Sinks> {
        let mut json = Vec::new();
        // The descriptor first: it can be wrong without anything having been created.
        if let Some(fd) = run.status_fd {
            let f = adopt(fd).with_context(|| {
                format!(
                    "--status-fd {fd}: not a descriptor open for writing (a file, pipe or terminal)"
                )
            })?;
            json.push((format!("--status-fd {fd}"), f));
        }
        if let Some(p) = &run.status_json {
            json.push((p.display().to_string(), create(p)?));
        }
        let meta = match &run.meta {
            Some(p) => Some((p.display().to_string(), create(p)?)),
            None => None,
        };
        Ok(Sinks { json, meta })
    }

    pub fn write(&mut self, report: &RunReport) -> Result<()> {
        let json = report.to_json();
        for (name, f) in &mut self.json {
            f.write_all(json.as_bytes())
                .and_then(|()| f.flush())
                .with_context(|| format!("writing the report to {name}"))?;
        }
        if let Some((name, f)) = &mut self.meta {
            f.write_all(report.to_meta().as_bytes())
                .and_then(|()| f.flush())
                .with_context(|| format!("writing the meta file {name}"))?;
        }
        Ok(())
    }
}
