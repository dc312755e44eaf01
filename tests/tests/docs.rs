//! The docs describe the program as it is: README.md, SECURITY.md, ARCHITECTURE.md and docs/
//! never promise ("not yet", "later", "until then") nor point at the issue tracker ("issue 7").
//! Such words went stale as soon as the feature they waited for was merged, and a reader cannot
//! tell which ones have. Needs no root and no binaries: it reads files.

use std::fs;
use std::path::{Path, PathBuf};

/// Phrases that speak of a future (matched across line breaks, any case).
const PHRASES: [&str; 7] = [
    "not yet",
    "until then",
    "for now",
    "will be added",
    "in the future",
    "future release",
    "once it exists",
];

/// Words that do the same on their own (matched as whole words, any case).
const WORDS: [&str; 5] = ["later", "yet", "todo", "tbd", "fixme"];

/// Every stale phrase in `text`: (line number, what was found).
fn stale(text: &str) -> Vec<(usize, String)> {
    // One byte for one byte, so offsets are the same in both.
    let flat: String = text
        .chars()
        .map(|c| {
            if c == '\n' {
                ' '
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let squeezed = |from: usize, chars: usize| -> String {
        let window: String = flat[from..].chars().take(chars).collect();
        window.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let line_of = |offset: usize| text[..offset].matches('\n').count() + 1;
    let mut found = Vec::new();
    // Phrases: compare with runs of white space squeezed to one space.
    for phrase in PHRASES {
        let first = phrase.split(' ').next().unwrap_or(phrase);
        for (at, _) in flat.match_indices(first) {
            let window = squeezed(at, phrase.len() * 3);
            if window.starts_with(phrase) {
                found.push((line_of(at), phrase.to_string()));
            }
        }
    }
    // Words, and "issue N" / "issues N" / "issue #N".
    let bytes = flat.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && is_word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let word = &flat[start..i];
        if WORDS.contains(&word) {
            found.push((line_of(start), word.to_string()));
        }
        if word == "issue" || word == "issues" {
            let rest = flat[i..].trim_start();
            let rest = rest.strip_prefix('#').unwrap_or(rest);
            if rest.starts_with(|c: char| c.is_ascii_digit()) {
                let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
                found.push((line_of(start), format!("{word} {n}")));
            }
        }
    }
    found.sort();
    found
}

fn docs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let mut files = vec![
        root.join("README.md"),
        root.join("SECURITY.md"),
        root.join("ARCHITECTURE.md"),
    ];
    let mut dir: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    dir.sort();
    files.extend(dir);
    files
}

#[test]
fn the_docs_describe_the_program_as_it_is() {
    let files = docs();
    assert!(files.len() >= 5, "too few docs found: {files:?}");
    let mut problems = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (line, what) in stale(&text) {
            let shown = text.lines().nth(line - 1).unwrap_or("").trim();
            problems.push(format!("{}:{line}: \"{what}\": {shown}", f.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "docs that speak of a future or of issue numbers (say what the program does now):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_finds_each_stale_phrase_and_nothing_else() {
    for (text, want) in [
        ("Seccomp: not yet.", vec![(1, "not yet"), (1, "yet")]),
        (
            "limits: not\n  yet (see below)",
            vec![(1, "not yet"), (2, "yet")],
        ),
        ("It will, later, run as a daemon.", vec![(1, "later")]),
        ("Until then the parent is fixed.", vec![(1, "until then")]),
        ("(issue 3)", vec![(1, "issue 3")]),
        ("see issues 4 and 7", vec![(1, "issues 4")]),
        ("fixed in issue #12", vec![(1, "issue 12")]),
        ("TODO: write this", vec![(1, "todo")]),
    ] {
        let got: Vec<(usize, String)> = stale(text);
        let want: Vec<(usize, String)> =
            want.into_iter().map(|(l, w)| (l, w.to_string())).collect();
        assert_eq!(got, want, "{text:?}");
    }
    // The control: the same subjects said as they are.
    for clean in [
        "Seccomp: a default filter, OCI profiles and raw BPF programs.",
        "A second --rlimit for the same name replaces the first.",
        "Report problems privately, not in a public issue.",
        "The layer (an overlayer) and the Tissue 3 are not words we forbid.",
    ] {
        assert_eq!(stale(clean), Vec::<(usize, String)>::new(), "{clean:?}");
    }
}
