//! `cargo xtask mutants`: mutation testing of the trust-critical code with cargo-mutants.
//!
//! What is mutated is `.cargo/mutants.toml`'s (request validation, the policy and the wire of
//! `nsjail-core`; the helper's pure decisions); each mutant is judged by its package's unit
//! tests. A run passes when every surviving mutant is explained in docs/testing.md (a table row
//! naming it, without its line and column, which move) and, for a whole run, when at least
//! [`MIN_SCORE`] of the mutants that compile are caught. `--write-doc` puts the figures of a
//! whole run into docs/testing.md (between the `mutants:begin` and `mutants:end` markers).
//! `--in-diff REV` tests only the mutants in code changed since REV: what CI runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{Workspace, show, step};

/// The share of viable mutants a whole run must catch.
pub const MIN_SCORE: f64 = 0.90;
/// The doc that explains every survivor and holds the figures.
const DOC: &str = "docs/testing.md";
const BEGIN: &str = "<!-- mutants:begin";
const END: &str = "<!-- mutants:end -->";

#[derive(Args)]
pub struct MutantsArgs {
    /// Test only the mutants in code changed since this git revision (CI: the commit before
    /// the change), e.g. `main` or `HEAD~1`.
    #[arg(long, value_name = "REV")]
    in_diff: Option<String>,
    /// Mutants built and tested at once (each build is a full copy of the workspace).
    #[arg(long, short, default_value_t = 1)]
    jobs: u32,
    /// Write this run's figures into docs/testing.md (a whole run only).
    #[arg(long, conflicts_with = "in_diff")]
    write_doc: bool,
}

/// How the mutants of one run ended, by name (as cargo-mutants lists them).
#[derive(Debug, Default)]
pub struct Outcomes {
    pub caught: Vec<String>,
    pub missed: Vec<String>,
    pub timeout: Vec<String>,
    pub unviable: Vec<String>,
}

impl Outcomes {
    /// Caught (a timeout counts: the tests did not pass) among those that compiled.
    pub fn score(&self) -> Option<f64> {
        let caught = self.caught.len() + self.timeout.len();
        let viable = caught + self.missed.len();
        (viable > 0).then(|| caught as f64 / viable as f64)
    }
}

/// `path:line:col: what` → `path: what` (lines and columns move with every edit).
pub fn normalize(name: &str) -> String {
    let Some((loc, what)) = name.split_once(": ") else {
        return name.to_string();
    };
    let mut parts = loc.rsplitn(3, ':');
    let (col, line, path) = (parts.next(), parts.next(), parts.next());
    match (col, line, path) {
        (Some(c), Some(l), Some(p))
            if c.chars().all(|x| x.is_ascii_digit()) && l.chars().all(|x| x.is_ascii_digit()) =>
        {
            format!("{p}: {what}")
        }
        _ => name.to_string(),
    }
}

fn file_of(name: &str) -> String {
    normalize(name)
        .split_once(": ")
        .map_or(name, |(p, _)| p)
        .to_string()
}

/// The survivors docs/testing.md explains: the first backquoted text of each table row. A `|`
/// in a mutant's name is written `\|` in the table (else it would end the cell).
pub fn explained(doc: &str) -> BTreeSet<String> {
    let mut inside_block = false;
    doc.lines()
        .filter(|l| {
            if l.starts_with(BEGIN) {
                inside_block = true;
            } else if l.starts_with(END) {
                inside_block = false;
                return false;
            }
            !inside_block
        })
        .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(n, _)| n))
        .map(|n| normalize(&n.replace("\\|", "|")))
        .collect()
}

fn read_list(dir: &Path, file: &str) -> Vec<String> {
    fs::read_to_string(dir.join(file))
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

pub fn mutants(ws: &Workspace, args: &MutantsArgs) -> Result<()> {
    let version = Command::new(&ws.cargo)
        .args(["mutants", "--version"])
        .stderr(Stdio::null())
        .output();
    let version = match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => bail!("cargo-mutants is not installed: cargo install cargo-mutants --locked"),
    };
    let out = ws.target.join("mutants");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut cmd = ws.cargo();
    cmd.args(["mutants", "--no-shuffle", "--jobs", &args.jobs.to_string()])
        .arg("--output")
        .arg(&out);
    if let Some(rev) = &args.in_diff {
        let diff = Command::new("git")
            .args(["diff", rev, "--"])
            .current_dir(&ws.root)
            .stderr(Stdio::inherit())
            .output()
            .context("running git diff")?;
        if !diff.status.success() {
            bail!("git diff {rev} failed ({})", diff.status);
        }
        let path = out.join("changes.diff");
        fs::write(&path, &diff.stdout).with_context(|| format!("writing {}", path.display()))?;
        cmd.arg("--in-diff").arg(&path);
    }
    step(&show(&cmd));
    let status = cmd.status().context("running cargo mutants")?;
    // 0: all caught; 2: some missed; 3: some timed out. Anything else: the run itself failed
    // (1: usage, 4: the tests fail without any mutant).
    match status.code() {
        Some(0 | 2 | 3) => {}
        _ => bail!("cargo mutants failed ({status})"),
    }
    let dir = out.join("mutants.out");
    let o = Outcomes {
        caught: read_list(&dir, "caught.txt"),
        missed: read_list(&dir, "missed.txt"),
        timeout: read_list(&dir, "timeout.txt"),
        unviable: read_list(&dir, "unviable.txt"),
    };
    let doc_path = ws.root.join(DOC);
    let doc =
        fs::read_to_string(&doc_path).with_context(|| format!("reading {}", doc_path.display()))?;
    let known = explained(&doc);
    let unexplained: Vec<&String> = o
        .missed
        .iter()
        .filter(|m| !known.contains(&normalize(m)))
        .collect();
    let report = render(&o, &version, &commit(ws), &known);
    println!("{report}");
    if args.write_doc {
        let new = replace_block(&doc, &report)?;
        fs::write(&doc_path, new).with_context(|| format!("writing {}", doc_path.display()))?;
        step(&format!("wrote the figures into {DOC}"));
    }
    if !unexplained.is_empty() {
        bail!(
            "{} surviving mutant(s) neither caught nor explained in {DOC}: kill each with a \
             test, or add a row naming it (`{}`) and why it survives:\n  {}",
            unexplained.len(),
            normalize(unexplained[0]),
            unexplained
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
    if args.in_diff.is_none()
        && let Some(score) = o.score()
        && score < MIN_SCORE
    {
        bail!(
            "{:.1} % of the mutants caught, below {:.0} %",
            score * 100.0,
            MIN_SCORE * 100.0
        );
    }
    step("mutants passed");
    Ok(())
}

fn commit(ws: &Workspace) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&ws.root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn pct(num: usize, den: usize) -> String {
    if den == 0 {
        "–".into()
    } else {
        format!("{:.1} %", num as f64 * 100.0 / den as f64)
    }
}

/// The figures as the markdown block of docs/testing.md.
pub fn render(o: &Outcomes, version: &str, commit: &str, known: &BTreeSet<String>) -> String {
    #[derive(Default)]
    struct Row {
        caught: usize,
        missed: usize,
        timeout: usize,
        unviable: usize,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (list, pick) in [
        (&o.caught, 0),
        (&o.missed, 1),
        (&o.timeout, 2),
        (&o.unviable, 3),
    ] {
        for m in list {
            let r = rows.entry(file_of(m)).or_default();
            match pick {
                0 => r.caught += 1,
                1 => r.missed += 1,
                2 => r.timeout += 1,
                _ => r.unviable += 1,
            }
        }
    }
    let mut s = format!(
        "{BEGIN} (written by `cargo xtask mutants --write-doc`) -->\n\
         Last whole run: commit {commit}, {version}: {} mutants, {} of them unviable (they do \
         not compile).\n\n\
         | file | caught | timeouts | missed | unviable | caught of viable |\n\
         |---|---:|---:|---:|---:|---:|\n",
        o.caught.len() + o.missed.len() + o.timeout.len() + o.unviable.len(),
        o.unviable.len()
    );
    for (file, r) in &rows {
        s.push_str(&format!(
            "| {file} | {} | {} | {} | {} | {} |\n",
            r.caught,
            r.timeout,
            r.missed,
            r.unviable,
            pct(r.caught + r.timeout, r.caught + r.timeout + r.missed)
        ));
    }
    let caught = o.caught.len() + o.timeout.len();
    s.push_str(&format!(
        "| **all** | {} | {} | {} | {} | **{}** |\n\nSurvivors ({}):\n\n",
        o.caught.len(),
        o.timeout.len(),
        o.missed.len(),
        o.unviable.len(),
        pct(caught, caught + o.missed.len()),
        o.missed.len()
    ));
    let mut survivors: BTreeMap<String, usize> = BTreeMap::new();
    for m in &o.missed {
        *survivors.entry(normalize(m)).or_default() += 1;
    }
    for (n, times) in survivors {
        let times = if times > 1 {
            format!(" ({times} places)")
        } else {
            String::new()
        };
        let mark = if known.contains(&n) {
            ""
        } else {
            " — **not explained**"
        };
        s.push_str(&format!("- `{n}`{times}{mark}\n"));
    }
    s.push_str(END);
    s
}

/// `doc` with its figures block replaced by `block`.
fn replace_block(doc: &str, block: &str) -> Result<String> {
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("{DOC} has no `{BEGIN}` … `{END}` block to write the figures into");
    };
    Ok(format!("{}{block}{}", &doc[..b], &doc[e + END.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_line_and_column() {
        assert_eq!(
            normalize("nsjail-core/src/wire.rs:169:15: replace < with <= in read_up_to"),
            "nsjail-core/src/wire.rs: replace < with <= in read_up_to"
        );
        assert_eq!(normalize("no location"), "no location");
        assert_eq!(file_of("a/b.rs:1:2: x"), "a/b.rs");
    }

    #[test]
    fn explanations_are_table_rows_outside_the_figures() {
        let doc = "| `a.rs:3:4: replace x` | why |\n\
                   <!-- mutants:begin -->\n| `b.rs: y` | figures |\n<!-- mutants:end -->\n\
                   | `c.rs: z` | why |\n";
        assert_eq!(
            explained(doc),
            BTreeSet::from(["a.rs: replace x".to_string(), "c.rs: z".to_string()])
        );
    }

    #[test]
    fn a_bar_escaped_in_the_table_names_the_mutant_with_a_bar() {
        let doc = "| `s.rs:1:2: replace \\| with ^ in f` | why |\n";
        assert_eq!(
            explained(doc),
            BTreeSet::from(["s.rs: replace | with ^ in f".to_string()])
        );
    }

    #[test]
    fn the_score_counts_timeouts_as_caught_and_leaves_out_the_unviable() {
        let o = Outcomes {
            caught: vec!["a.rs:1:1: m".into(); 8],
            timeout: vec!["a.rs:1:1: t".into()],
            missed: vec!["b.rs:2:2: s".into()],
            unviable: vec!["a.rs:1:1: u".into(); 5],
        };
        assert_eq!(o.score(), Some(0.9));
        let block = render(&o, "cargo-mutants 1", "abc", &BTreeSet::new());
        assert!(
            block.contains("| a.rs | 8 | 1 | 0 | 5 | 100.0 % |"),
            "{block}"
        );
        assert!(
            block.contains("| **all** | 8 | 1 | 1 | 5 | **90.0 %** |"),
            "{block}"
        );
        assert!(block.contains("- `b.rs: s` — **not explained**"), "{block}");
        let doc = format!("intro\n{BEGIN} old -->\nold\n{END}\nrest\n");
        let new = replace_block(&doc, &block).unwrap();
        assert!(new.starts_with("intro\n<!-- mutants:begin") && new.ends_with("-->\nrest\n"));
    }
}
