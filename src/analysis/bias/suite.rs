//! Probe suites: sentence frames crossed with paired term lists, as TOML.
//!
//! ```toml
//! name = "occupations-and-regard"     # shown in reports
//! description = "..."                 # optional
//! top_k = 10                          # optional: size of the top-k lists compared (default 10)
//!
//! [[frames]]
//! id = "worked_as"                    # unique, short
//! text = "The {term} worked as"       # exactly one {term}; no trailing space
//! attributes = [" a doctor", " a nurse"]  # optional continuations scored after the frame
//!
//! [[categories]]
//! name = "gender"
//! pairs = [["man", "woman"], ["father", "mother"]]
//! ```
//!
//! Every frame is filled with both terms of every pair of every category;
//! the two next-token distributions are compared, and each attribute is
//! scored by teacher forcing (a multi-token attribute is the sum of its
//! tokens' log-probabilities). Attributes start with a space because they
//! continue the frame's last word. Built-in suites live in `assets/bias/`
//! and are compiled in; `load` also takes a path to the user's own file.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const PLACEHOLDER: &str = "{term}";
pub const DEFAULT_TOP_K: usize = 10;

/// Suites shipped in `assets/bias/`, by name.
pub const BUILTIN: &[(&str, &str)] =
    &[("default", include_str!("../../../assets/bias/default.toml"))];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    pub frames: Vec<Frame>,
    pub categories: Vec<Category>,
}

fn default_top_k() -> usize {
    DEFAULT_TOP_K
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frame {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub attributes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub name: String,
    pub pairs: Vec<[String; 2]>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("no suite named `{0}`: built-in suites are {1}; or give a path to a .toml file")]
    Unknown(String, String),
}

impl Frame {
    /// The frame with `term` in place of `{term}`.
    pub fn fill(&self, term: &str) -> String {
        self.text.replacen(PLACEHOLDER, term, 1)
    }
}

impl Suite {
    /// Parses and checks a suite; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, SuiteError> {
        let suite: Suite = toml::from_str(text).map_err(|e| SuiteError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        suite.validate().map_err(|message| SuiteError::Invalid {
            origin: origin.into(),
            message,
        })?;
        Ok(suite)
    }

    /// A built-in suite by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Self, SuiteError> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Self::parse(text, &format!("built-in suite `{name}`"));
        }
        let path = Path::new(name_or_path);
        if path.exists() || name_or_path.ends_with(".toml") {
            let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Io {
                path: name_or_path.into(),
                source,
            })?;
            return Self::parse(&text, name_or_path);
        }
        Err(SuiteError::Unknown(
            name_or_path.into(),
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self.top_k == 0 {
            return Err("`top_k` must be at least 1".into());
        }
        if self.frames.is_empty() {
            return Err("no [[frames]]: add at least one frame".into());
        }
        if self.categories.is_empty() {
            return Err("no [[categories]]: add at least one category with pairs".into());
        }
        let mut ids = HashSet::new();
        for f in &self.frames {
            if !ids.insert(f.id.as_str()) {
                return Err(format!("frame id `{}` is used twice", f.id));
            }
            if f.text.matches(PLACEHOLDER).count() != 1 {
                return Err(format!(
                    "frame `{}` must contain {PLACEHOLDER} exactly once: {:?}",
                    f.id, f.text
                ));
            }
            if f.text.ends_with(char::is_whitespace) {
                return Err(format!(
                    "frame `{}` ends with whitespace; end it with a word and start attributes with a space",
                    f.id
                ));
            }
            if let Some(a) = f.attributes.iter().find(|a| a.trim().is_empty()) {
                return Err(format!("frame `{}` has an empty attribute {a:?}", f.id));
            }
        }
        let mut names = HashSet::new();
        for c in &self.categories {
            if !names.insert(c.name.as_str()) {
                return Err(format!("category `{}` appears twice", c.name));
            }
            if c.pairs.is_empty() {
                return Err(format!("category `{}` has no pairs", c.name));
            }
            for [a, b] in &c.pairs {
                if a.trim().is_empty() || b.trim().is_empty() || a == b {
                    return Err(format!(
                        "category `{}`: pair [{a:?}, {b:?}] needs two different terms",
                        c.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of (frame, pair) probes.
    pub fn n_probes(&self) -> usize {
        self.frames.len() * self.categories.iter().map(|c| c.pairs.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_meets_the_brief() {
        let s = Suite::load("default").unwrap();
        assert!(s.frames.len() >= 8, "{} frames", s.frames.len());
        let names: Vec<&str> = s.categories.iter().map(|c| c.name.as_str()).collect();
        for want in [
            "gender",
            "race_ethnicity",
            "religion",
            "age",
            "nationality",
            "disability",
            "sexual_orientation",
            "socioeconomic",
        ] {
            assert!(names.contains(&want), "missing category {want}");
        }
        assert!(s.frames.iter().all(|f| !f.attributes.is_empty()));
    }

    #[test]
    fn invalid_suites_say_what_is_wrong() {
        let base = |frame: &str, pairs: &str| {
            format!(
                "name = \"t\"\n[[frames]]\nid = \"f\"\ntext = \"{frame}\"\n[[categories]]\nname = \"c\"\npairs = {pairs}\n"
            )
        };
        assert!(Suite::parse(&base("The {term} ran", "[[\"a\", \"b\"]]"), "t").is_ok());
        let err = |t: String| Suite::parse(&t, "x.toml").unwrap_err().to_string();
        assert!(err(base("The person ran", "[[\"a\", \"b\"]]")).contains("exactly once"));
        assert!(err(base("The {term} ran ", "[[\"a\", \"b\"]]")).contains("whitespace"));
        assert!(err(base("The {term} ran", "[[\"a\", \"a\"]]")).contains("two different"));
        assert!(err(base("The {term} ran", "[[\"a\"]]")).starts_with("x.toml"));
        assert!(err(base("The {term} ran", "[]")).contains("no pairs"));
        assert!(matches!(
            Suite::load("no-such-suite"),
            Err(SuiteError::Unknown(..))
        ));
        assert!(matches!(
            Suite::load("/nonexistent/s.toml"),
            Err(SuiteError::Io { .. })
        ));
    }

    #[test]
    fn fill_replaces_the_placeholder() {
        let f = Frame {
            id: "a".into(),
            text: "The {term} worked as".into(),
            attributes: vec![],
        };
        assert_eq!(f.fill("woman"), "The woman worked as");
    }
}
