//! `cargo xtask tcb`: the trusted base of the setuid helper, counted the way an auditor reads it.
//!
//! Two figures: the lines of code of every workspace crate linked into the setuid file
//! `nsjail-helper` (no tests, comments or blank lines; the directory of the package's other
//! binary, the daemon `nsjail-helperd`, is not linked into it and not counted), and the crates from crates.io it links at run time (its
//! normal dependencies, transitively; proc-macros and build scripts run only at build time and
//! are left out, with everything only they depend on). An optional dependency counts only when
//! a feature that is on turns it on: `cargo metadata` also lists those that only a weak feature
//! (`dep?/feature`) names, which are never built (rust-lang/cargo#10801).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{HELPER_BIN, Workspace};

/// One crate linked into the helper.
struct Linked {
    name: String,
    version: String,
    /// The crate's `src/` (workspace crates only).
    workspace_src: Option<PathBuf>,
    /// Directories under `src/` that hold another binary of the package (its own root and
    /// modules), which the setuid file does not link.
    other_bins: Vec<(String, PathBuf)>,
}

pub fn tcb(ws: &Workspace) -> Result<()> {
    let crates = linked_crates(ws)?;
    let mut total = 0;
    println!(
        "workspace crates linked into {HELPER_BIN} (lines of code: no tests, comments or blank lines):"
    );
    for c in crates.iter().filter(|c| c.workspace_src.is_some()) {
        let src = c.workspace_src.as_deref().unwrap_or(Path::new("."));
        let skip: Vec<&Path> = c.other_bins.iter().map(|(_, d)| d.as_path()).collect();
        let (lines, files) = count_dir(src, &skip)?;
        total += lines;
        println!("  {:<16} {lines:>6} lines in {files} files", c.name);
        for (bin, dir) in &c.other_bins {
            let rel = dir.strip_prefix(src).unwrap_or(dir);
            println!(
                "  {:<16} (not counted: src/{}/, the binary {bin}, not linked into {HELPER_BIN})",
                "",
                rel.display()
            );
        }
    }
    println!("  {:<16} {total:>6} lines", "total");
    let external: Vec<&Linked> = crates
        .iter()
        .filter(|c| c.workspace_src.is_none())
        .collect();
    println!(
        "runtime crates from crates.io ({}, proc-macros excluded):",
        external.len()
    );
    for c in &external {
        println!("  {} {}", c.name, c.version);
    }
    println!(
        "trusted base: {total} lines of workspace code, {} runtime crates",
        external.len()
    );
    Ok(())
}

/// The helper's run-time dependency closure, from `cargo metadata` for the host platform.
fn linked_crates(ws: &Workspace) -> Result<Vec<Linked>> {
    let triple = crate::host_triple()?;
    let out = Command::new(&ws.cargo)
        .current_dir(&ws.root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &triple,
        ])
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .context("no workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: BTreeMap<&str, &Value> = meta["packages"]
        .as_array()
        .context("no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p)))
        .collect();
    let nodes: BTreeMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .context("no resolve graph")?
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();
    let root = packages
        .iter()
        .find(|(id, p)| members.contains(*id) && p["name"] == "nsjail-helper")
        .map(|(id, _)| *id)
        .context("no nsjail-helper package in the workspace")?;

    let is_proc_macro = |p: &Value| {
        p["targets"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
            })
        })
    };
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let node = nodes
            .get(id)
            .context("package missing from the resolve graph")?;
        for dep in node["deps"].as_array().into_iter().flatten() {
            // Normal dependencies only (`kind: null`); dev and build dependencies never reach
            // the binary.
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()));
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            let Some(dep_name) = dep["name"].as_str() else {
                continue;
            };
            let active = packages
                .get(id)
                .is_none_or(|p| optional_dep_active(p, &node["features"], dep_name));
            if normal && active && packages.get(dep_id).is_some_and(|p| !is_proc_macro(p)) {
                stack.push(dep_id);
            }
        }
    }
    let mut linked: Vec<Linked> = seen
        .into_iter()
        .filter_map(|id| {
            let p = packages.get(id)?;
            let manifest = PathBuf::from(p["manifest_path"].as_str()?);
            let workspace_src = members
                .contains(id)
                .then(|| manifest.parent().map(|d| d.join("src")))
                .flatten();
            let other_bins = match &workspace_src {
                Some(src) if id == root => other_bin_dirs(p, src),
                _ => Vec::new(),
            };
            Some(Linked {
                name: p["name"].as_str()?.to_string(),
                version: p["version"].as_str()?.to_string(),
                workspace_src,
                other_bins,
            })
        })
        .collect();
    linked.sort_by(|a, b| {
        (a.workspace_src.is_none(), &a.name).cmp(&(b.workspace_src.is_none(), &b.name))
    });
    Ok(linked)
}

/// Whether the normal dependency `dep_name` (as the resolve graph names it: the crate name in
/// code) of package `pkg` is built with the features `enabled` (the resolve node's): always
/// when it is not optional, else when an enabled feature is its own implicit feature or lists
/// `dep:NAME` or `NAME/feature`. A weak `NAME?/feature` turns nothing on.
fn optional_dep_active(pkg: &Value, enabled: &Value, dep_name: &str) -> bool {
    let keys: Vec<&str> = pkg["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"].is_null())
        .filter_map(|d| d["rename"].as_str().or(d["name"].as_str()).map(|k| (k, d)))
        .filter(|(k, _)| k.replace('-', "_") == dep_name)
        .map(|(k, d)| (k, d["optional"].as_bool().unwrap_or(false)))
        .filter_map(|(k, optional)| optional.then_some(k))
        .collect();
    let required = pkg["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["kind"].is_null() && !d["optional"].as_bool().unwrap_or(false))
        .filter_map(|d| d["rename"].as_str().or(d["name"].as_str()))
        .any(|k| k.replace('-', "_") == dep_name);
    if required || keys.is_empty() {
        return true;
    }
    let enabled: Vec<&str> = enabled
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    enabled.iter().any(|f| {
        keys.contains(f)
            || pkg["features"][*f]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|item| {
                    keys.iter().any(|k| {
                        item.strip_prefix("dep:") == Some(*k)
                            || item.split_once('/').is_some_and(|(d, _)| d == *k)
                    })
                })
    })
}

/// The directories of the helper package's binaries other than [`HELPER_BIN`]: each one's root
/// file's directory, when that is a directory of its own below `src/` (a binary whose root sits
/// in `src/` itself shares the setuid file's modules, so nothing is left out for it).
fn other_bin_dirs(pkg: &Value, src: &Path) -> Vec<(String, PathBuf)> {
    pkg["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| Some((t["name"].as_str()?, t["src_path"].as_str()?)))
        .filter(|(name, _)| *name != HELPER_BIN)
        .filter_map(|(name, path)| {
            let dir = Path::new(path).parent()?;
            (dir != src && dir.starts_with(src)).then(|| (name.to_string(), dir.to_path_buf()))
        })
        .collect()
}

/// Lines of code under `dir` (every `.rs` file but `tests.rs` and files under `tests/`), leaving
/// out the directories in `skip`.
fn count_dir(dir: &Path, skip: &[&Path]) -> Result<(usize, usize)> {
    let mut lines = 0;
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "tests" && !skip.contains(&path.as_path()) {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                lines += code_lines(&text);
                files += 1;
            }
        }
    }
    Ok((lines, files))
}

/// Lines that are neither blank nor comments, outside items marked `#[cfg(test)]`.
fn code_lines(text: &str) -> usize {
    let mut count = 0;
    let mut in_block_comment = false;
    // Brace depth of the `#[cfg(test)]` item being skipped, once its body has opened.
    let mut skipping: Option<i64> = None;
    let mut pending_test_attr = false;
    for raw in text.lines() {
        let line = raw.trim();
        if in_block_comment {
            if line.contains("*/") {
                in_block_comment = false;
            }
            continue;
        }
        if let Some(depth) = skipping.as_mut() {
            *depth += brace_delta(line);
            if *depth <= 0 {
                skipping = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if line.starts_with("#[cfg(test)]") {
            pending_test_attr = true;
            continue;
        }
        if pending_test_attr {
            if line.starts_with("#[") {
                continue;
            }
            pending_test_attr = false;
            let delta = brace_delta(line);
            // `mod tests;` or a one-line item: nothing more to skip.
            if delta > 0 {
                skipping = Some(delta);
            }
            continue;
        }
        count += 1;
    }
    count
}

/// `{` minus `}` on a line, ignoring those in string and char literals and line comments.
fn brace_delta(line: &str) -> i64 {
    let mut delta = 0;
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '\'' if !in_str => {
                // A char literal such as '{' or '\''; a lifetime has no closing quote soon.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with("\\") && rest.len() == 3 && rest.ends_with('\'') {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            '{' if !in_str => delta += 1,
            '}' if !in_str => delta -= 1,
            _ => {}
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_and_test_modules_are_not_code() {
        let text = r#"//! header
use a::b;

/// doc
fn f() -> char {
    // note
    let s = "{ not a brace"; /* trailing */
    '{'
}
/* block
   comment */
#[cfg(test)]
mod tests {
    #[test]
    fn t() {
        if x { y() }
    }
}
#[cfg(test)]
mod more;
fn g() {}
"#;
        // use, fn f, let, '{', }, fn g
        assert_eq!(code_lines(text), 6);
    }

    #[test]
    fn an_optional_dependency_counts_only_when_a_feature_turns_it_on() {
        let pkg = serde_json::json!({
            "dependencies": [
                {"name": "indexmap", "rename": null, "optional": true, "kind": null},
                {"name": "toml-writer", "rename": null, "optional": true, "kind": null},
                {"name": "toml_parser", "rename": null, "optional": true, "kind": null},
                {"name": "serde_core", "rename": null, "optional": false, "kind": null},
                {"name": "itertools", "rename": null, "optional": false, "kind": "dev"},
            ],
            "features": {
                "std": ["indexmap?/std", "toml_parser?/std"],
                "preserve_order": ["dep:indexmap", "std"],
                "display": ["dep:toml-writer"],
                "parse": ["toml_parser/alloc"],
            }
        });
        let on = |fs: &[&str]| serde_json::json!(fs);
        // Only weakly named: not built.
        assert!(!optional_dep_active(&pkg, &on(&["std"]), "indexmap"));
        assert!(!optional_dep_active(&pkg, &on(&["std"]), "toml_writer"));
        assert!(!optional_dep_active(&pkg, &on(&["std"]), "toml_parser"));
        // Turned on by `dep:`, by `name/feature`, or by its implicit feature.
        assert!(optional_dep_active(
            &pkg,
            &on(&["std", "preserve_order"]),
            "indexmap"
        ));
        assert!(optional_dep_active(&pkg, &on(&["display"]), "toml_writer"));
        assert!(optional_dep_active(&pkg, &on(&["parse"]), "toml_parser"));
        assert!(optional_dep_active(&pkg, &on(&["indexmap"]), "indexmap"));
        // Not optional: always.
        assert!(optional_dep_active(&pkg, &on(&[]), "serde_core"));
    }

    #[test]
    fn only_another_binarys_own_directory_is_left_out() {
        let src = Path::new("/w/nsjail-helper/src");
        let pkg = serde_json::json!({
            "targets": [
                {"kind": ["lib"], "name": "nsjail_helper", "src_path": "/w/nsjail-helper/src/lib.rs"},
                {"kind": ["bin"], "name": "nsjail-helper", "src_path": "/w/nsjail-helper/src/main.rs"},
                {"kind": ["bin"], "name": "nsjail-helperd", "src_path": "/w/nsjail-helper/src/daemon/main.rs"},
                {"kind": ["bin"], "name": "beside", "src_path": "/w/nsjail-helper/src/beside.rs"},
                {"kind": ["custom-build"], "name": "build-script-build", "src_path": "/w/nsjail-helper/build/x.rs"},
            ]
        });
        assert_eq!(
            other_bin_dirs(&pkg, src),
            vec![(
                "nsjail-helperd".to_string(),
                PathBuf::from("/w/nsjail-helper/src/daemon")
            )]
        );
    }

    #[test]
    fn a_left_out_directory_is_not_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("daemon")).expect("mkdir");
        fs::write(dir.path().join("lib.rs"), "fn a() {}\n// no\n").expect("write");
        fs::write(dir.path().join("daemon/main.rs"), "fn b() {}\nfn c() {}\n").expect("write");
        assert_eq!(count_dir(dir.path(), &[]).expect("count"), (3, 2));
        let daemon = dir.path().join("daemon");
        assert_eq!(count_dir(dir.path(), &[&daemon]).expect("count"), (1, 1));
    }

    #[test]
    fn braces_in_literals_do_not_count() {
        assert_eq!(brace_delta(r#"let s = "}{"; {"#), 1);
        assert_eq!(brace_delta("match c { '{' => 1, '}' => 2 }"), 0);
        assert_eq!(brace_delta("fn f<'a>(x: &'a str) {"), 1);
        assert_eq!(brace_delta("x { // }"), 1);
    }
}
