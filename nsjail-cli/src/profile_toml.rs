//! One profile file: a named set of `nsjail run` options, written in TOML with one key per flag
//! (the flag's long name, with `-` or `_`), plus `include = ["other", ...]`.
//!
//! This module only parses the text into entries in the order of the file (filesystem options
//! depend on it); `profiles.rs` knows what each key means and where profiles are found.

use serde::Deserialize;
use thiserror::Error;

/// One profile file, parsed: the profiles it includes, then its settings in the order they
/// appear in the file (the order matters for filesystem options).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Profile {
    pub include: Vec<String>,
    pub entries: Vec<(String, ProfileValue)>,
}

/// The value of one setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProfileValue {
    /// A flag: `share_net = true`.
    Bool(bool),
    /// A single value: `hostname = "box"`.
    Str(String),
    /// A number: `uid = 1000`.
    Int(i64),
    /// Several uses of a one-value option: `tmpfs = ["/a", "/b"]`.
    List(Vec<String>),
    /// Several uses of a many-value option: `bind = [["/src", "/dst"], ...]`.
    Table(Vec<Vec<String>>),
}

impl ProfileValue {
    /// How the value is written, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ProfileValue::Bool(_) => "a boolean",
            ProfileValue::Str(_) => "a string",
            ProfileValue::Int(_) => "an integer",
            ProfileValue::List(_) => "an array of strings",
            ProfileValue::Table(_) => "an array of arrays",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("not valid TOML: {0}")]
    Syntax(String),
    #[error("key {key:?}: {reason}")]
    BadValue { key: String, reason: String },
    #[error(
        "profile name {0:?} is not valid (letters, digits, '-', '_' and '.', not starting with '.')"
    )]
    BadName(String),
}

/// Longest profile file we read; a profile is a few lines.
pub const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// A profile name that can be a file name and nothing else: no `/`, no leading `.`.
pub fn check_name(name: &str) -> Result<(), ProfileError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ProfileError::BadName(name.to_string()))
    }
}

fn bad(key: &str, reason: impl Into<String>) -> ProfileError {
    ProfileError::BadValue {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn string_of(key: &str, v: &toml::Value) -> Result<String, ProfileError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        other => Err(bad(
            key,
            format!(
                "array items must be strings or integers, not {}",
                other.type_str()
            ),
        )),
    }
}

fn value_of(key: &str, v: &toml::Value) -> Result<ProfileValue, ProfileError> {
    Ok(match v {
        toml::Value::Boolean(b) => ProfileValue::Bool(*b),
        toml::Value::String(s) => ProfileValue::Str(s.clone()),
        toml::Value::Integer(i) => ProfileValue::Int(*i),
        toml::Value::Array(items) if items.iter().all(|i| i.is_array()) && !items.is_empty() => {
            let mut rows = Vec::with_capacity(items.len());
            for row in items {
                let row = row.as_array().map(Vec::as_slice).unwrap_or_default();
                rows.push(
                    row.iter()
                        .map(|x| string_of(key, x))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            ProfileValue::Table(rows)
        }
        toml::Value::Array(items) => ProfileValue::List(
            items
                .iter()
                .map(|x| string_of(key, x))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        other => {
            return Err(bad(
                key,
                format!(
                    "{} values are not used in profiles (use a boolean, string, integer or array)",
                    other.type_str()
                ),
            ));
        }
    })
}

/// Parse a profile's text. Keys keep the order of the file; `-` in keys becomes `_`.
pub fn parse(text: &str) -> Result<Profile, ProfileError> {
    if text.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::Syntax(format!(
            "longer than {MAX_PROFILE_BYTES} bytes"
        )));
    }
    let syntax = |e: toml::de::Error| ProfileError::Syntax(e.message().to_string());
    // The document's own table keeps where each key was written; toml's ordinary table would
    // sort the keys (its order-keeping feature would also reach the setuid helper, which
    // parses the policy with the same crate).
    let mut top: Vec<_> = toml::de::DeTable::parse(text)
        .map_err(syntax)?
        .into_inner()
        .into_iter()
        .collect();
    top.sort_by_key(|(k, _)| k.span().start);
    let mut profile = Profile::default();
    for (raw_key, v) in top {
        let v = toml::Value::deserialize(toml::de::ValueDeserializer::from(v)).map_err(syntax)?;
        let v = &v;
        let key = raw_key.get_ref().replace('-', "_");
        if key == "include" {
            let names = match value_of(&key, v)? {
                ProfileValue::Str(s) => vec![s],
                ProfileValue::List(l) => l,
                other => {
                    return Err(bad(
                        &key,
                        format!("must be an array of profile names, not {}", other.kind()),
                    ));
                }
            };
            for n in &names {
                check_name(n).map_err(|e| bad(&key, e.to_string()))?;
            }
            profile.include.extend(names);
            continue;
        }
        if profile.entries.iter().any(|(k, _)| *k == key) {
            return Err(bad(&key, "given twice (as - and _ spellings)"));
        }
        profile.entries.push((key.clone(), value_of(&key, v)?));
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_order() {
        let p = parse(
            r#"
            include = ["default"]
            tmpfs = ["/a", "/b"]
            share-net = true
            hostname = "box"
            uid = 1000
            bind = [["/src", "/dst"], ["/x", "/y"]]
            "#,
        )
        .unwrap();
        assert_eq!(p.include, ["default"]);
        assert_eq!(
            p.entries,
            vec![
                (
                    "tmpfs".into(),
                    ProfileValue::List(vec!["/a".into(), "/b".into()])
                ),
                ("share_net".into(), ProfileValue::Bool(true)),
                ("hostname".into(), ProfileValue::Str("box".into())),
                ("uid".into(), ProfileValue::Int(1000)),
                (
                    "bind".into(),
                    ProfileValue::Table(vec![
                        vec!["/src".into(), "/dst".into()],
                        vec!["/x".into(), "/y".into()]
                    ])
                ),
            ]
        );
    }

    #[test]
    fn keys_keep_the_order_of_the_file_not_the_alphabet() {
        let p = parse("tmpfs = \"/z\"\nbind = \"/y\"\nro-bind = \"/x\"\ndir = \"/w\"\n").unwrap();
        let keys: Vec<&str> = p.entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["tmpfs", "bind", "ro_bind", "dir"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("hostname = { a = 1 }").unwrap_err();
        assert!(matches!(&e, ProfileError::BadValue { key, .. } if key == "hostname"));
        let e = parse("bind = [[\"/a\", true]]").unwrap_err();
        assert!(matches!(&e, ProfileError::BadValue { key, .. } if key == "bind"));
        let e = parse("include = [\"../etc/x\"]").unwrap_err();
        assert!(matches!(&e, ProfileError::BadValue { key, .. } if key == "include"));
        let e = parse("include = true").unwrap_err();
        assert!(matches!(&e, ProfileError::BadValue { key, .. } if key == "include"));
        let e = parse("share-net = true\nshare_net = false").unwrap_err();
        assert!(matches!(&e, ProfileError::BadValue { key, .. } if key == "share_net"));
        assert!(matches!(parse("x = "), Err(ProfileError::Syntax(_))));
        assert!(matches!(
            parse(&"#".repeat(MAX_PROFILE_BYTES + 1)),
            Err(ProfileError::Syntax(_))
        ));
    }

    #[test]
    fn names() {
        for ok in ["gui", "my-tool_2", "a.b"] {
            assert_eq!(check_name(ok), Ok(()));
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
