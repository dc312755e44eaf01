//! Marked sections of docs/benchmarks.md: each bench mode rewrites only the part between its own
//! two markers, so the others' figures and the hand-written notes stay as they are.

/// The section of `md` from `begin` to `end`, markers included.
pub fn find<'a>(md: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = md.find(begin)?;
    let stop = md[start..].find(end)? + start + end.len();
    Some(&md[start..stop])
}

/// `md` with its `begin`…`end` section replaced by `section` (appended when it has none).
pub fn put(md: &str, begin: &str, end: &str, section: &str) -> String {
    match find(md, begin, end) {
        Some(old) => md.replacen(old, section, 1),
        None => {
            let mut s = md.trim_end().to_string();
            if !s.is_empty() {
                s.push_str("\n\n");
            }
            s.push_str(section);
            s.push('\n');
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_or_appended() {
        assert_eq!(
            put("# B\n\ntext\n", "<b>", "<e>", "S"),
            "# B\n\ntext\n\nS\n"
        );
        let with = "# B\n<b>\nold\n<e>\nafter\n";
        assert_eq!(
            put(with, "<b>", "<e>", "<b>\nnew\n<e>"),
            "# B\n<b>\nnew\n<e>\nafter\n"
        );
        assert_eq!(find(with, "<b>", "<e>"), Some("<b>\nold\n<e>"));
        assert_eq!(find("none", "<b>", "<e>"), None);
    }
}
