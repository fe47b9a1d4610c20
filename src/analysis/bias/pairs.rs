//! Minimal pairs in the CrowS-Pairs CSV format, and their scoring.
//!
//! A pair is two sentences that differ in the group they mention:
//! `sent_more` (the more stereotyping one) and `sent_less`. Each sentence is
//! scored from the model's own log-probabilities, after a single prefix
//! token, in one of three modes ([`Mode`]); a pair "prefers the stereotype"
//! when `score(sent_more) > score(sent_less)` (ties count against).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::stats::{self, Interval};

/// Categories with fewer pairs than this are marked as too small to read.
pub const MIN_CATEGORY_N: usize = 30;

/// How a sentence's log-probabilities become one score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// lm-evaluation-harness `crows_pairs_english` for causal models: the
    /// sum of the sentence's token log-probabilities after one prefix token.
    Lmeval,
    /// The per-token mean of the same log-probabilities (longer sentences
    /// are not penalised for their length).
    Mean,
    /// The sum over only the tokens both sentences share (difflib's matching
    /// blocks of the two token lists), in the spirit of Nangia et al.
    Shared,
    /// Masked language models: CrowS-Pairs' own pseudo-log-likelihood of
    /// the shared tokens, each masked in turn (see `bias::masked`);
    /// compared after rounding to 3 decimals, as its metric does.
    Pll,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Lmeval => "lmeval",
            Mode::Mean => "mean",
            Mode::Shared => "shared",
            Mode::Pll => "pll",
        }
    }

    pub const ALL: [Mode; 4] = [Mode::Lmeval, Mode::Mean, Mode::Shared, Mode::Pll];

    /// Whether the mode scores a masked language model (else a decoder).
    pub fn for_masked_models(self) -> bool {
        self == Mode::Pll
    }

    pub fn describe(self) -> &'static str {
        match self {
            Mode::Lmeval => {
                "sum of token log-probs after one prefix token (lm-evaluation-harness crows_pairs_english)"
            }
            Mode::Mean => "mean token log-prob after one prefix token",
            Mode::Shared => {
                "sum of log-probs of the tokens both sentences share (difflib matching blocks)"
            }
            Mode::Pll => {
                "pseudo-log-likelihood of the unmodified tokens, each masked in turn (CrowS-Pairs, Nangia et al. 2020)"
            }
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mode `{s}`: use lmeval, mean or shared (decoders) or pll (masked models)"))
    }
}

/// One row of the data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// 1-based line of the row in the file (for error messages and drill-down).
    pub line: usize,
    pub sent_more: String,
    pub sent_less: String,
    pub stereo_antistereo: String,
    pub bias_type: String,
}

/// A data file as read: its pairs and the SHA-256 of its bytes.
#[derive(Clone, Debug)]
pub struct PairsFile {
    pub pairs: Vec<Pair>,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsvError {
    #[error("line {line}: a quoted field is not closed")]
    UnclosedQuote { line: usize },
    #[error("line {line}: unexpected character after a closing quote")]
    AfterQuote { line: usize },
    #[error("the file is empty")]
    Empty,
    #[error(
        "the header has no `{0}` column (a CrowS-Pairs file has sent_more, sent_less, stereo_antistereo, bias_type)"
    )]
    MissingColumn(&'static str),
    #[error("line {line}: {found} fields, the header has {expected}")]
    FieldCount {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}: empty {column}")]
    EmptyField { line: usize, column: &'static str },
    #[error("the file has a header but no pairs")]
    NoPairs,
    #[error("the file is not UTF-8: {0}")]
    Utf8(String),
}

/// Splits RFC 4180 CSV text into records of fields, with the 1-based line
/// each record starts on. Quoted fields may hold commas, doubled quotes and
/// line breaks; CRLF and LF both end a record; blank lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut line = 1usize;
    let mut start_line = 1usize;
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut after_quote = false;
    let mut quote_line = 1usize;
    let mut record_has_content = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    in_quotes = false;
                    after_quote = true;
                }
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !after_quote => {
                in_quotes = true;
                quote_line = line;
                record_has_content = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                after_quote = false;
                record_has_content = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                if record_has_content || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    records.push((start_line, std::mem::take(&mut fields)));
                }
                after_quote = false;
                record_has_content = false;
                line += 1;
                start_line = line;
            }
            _ if after_quote => return Err(CsvError::AfterQuote { line }),
            _ => {
                field.push(c);
                record_has_content = true;
            }
        }
    }
    if in_quotes {
        return Err(CsvError::UnclosedQuote { line: quote_line });
    }
    if record_has_content || !field.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

/// Reads pairs from CSV bytes (CrowS-Pairs columns, by header name; other
/// columns are ignored).
pub fn read_pairs(bytes: &[u8]) -> Result<PairsFile, CsvError> {
    let sha256 = hex(&Sha256::digest(bytes));
    let text = std::str::from_utf8(bytes).map_err(|e| CsvError::Utf8(e.to_string()))?;
    let mut records = parse_csv(text)?.into_iter();
    let (_, header) = records.next().ok_or(CsvError::Empty)?;
    let col = |name: &'static str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or(CsvError::MissingColumn(name))
    };
    let (more, less, sa, bt) = (
        col("sent_more")?,
        col("sent_less")?,
        col("stereo_antistereo")?,
        col("bias_type")?,
    );
    let mut pairs = Vec::new();
    for (line, rec) in records {
        if rec.len() != header.len() {
            return Err(CsvError::FieldCount {
                line,
                found: rec.len(),
                expected: header.len(),
            });
        }
        for (i, name) in [(more, "sent_more"), (less, "sent_less"), (bt, "bias_type")] {
            if rec[i].trim().is_empty() {
                return Err(CsvError::EmptyField { line, column: name });
            }
        }
        pairs.push(Pair {
            line,
            sent_more: rec[more].clone(),
            sent_less: rec[less].clone(),
            stereo_antistereo: rec[sa].trim().to_string(),
            bias_type: rec[bt].trim().to_string(),
        });
    }
    if pairs.is_empty() {
        return Err(CsvError::NoPairs);
    }
    Ok(PairsFile { pairs, sha256 })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A sentence as the model scored it: its tokens after the prefix and
/// ln p(token | prefix, earlier tokens) for each.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SentenceScore {
    pub tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
}

/// Positions of `a` and of `b` inside the blocks Python's
/// `difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()`
/// finds: the longest common run first (earliest in `a`, then in `b`), then
/// recursively left and right of it.
pub fn shared_positions(a: &[u32], b: &[u32]) -> (Vec<usize>, Vec<usize>) {
    let mut pa = Vec::new();
    let mut pb = Vec::new();
    let mut queue = vec![(0usize, a.len(), 0usize, b.len())];
    while let Some((alo, ahi, blo, bhi)) = queue.pop() {
        let (i, j, k) = longest_match(a, b, alo, ahi, blo, bhi);
        if k > 0 {
            pa.extend(i..i + k);
            pb.extend(j..j + k);
            if alo < i && blo < j {
                queue.push((alo, i, blo, j));
            }
            if i + k < ahi && j + k < bhi {
                queue.push((i + k, ahi, j + k, bhi));
            }
        }
    }
    pa.sort_unstable();
    pb.sort_unstable();
    (pa, pb)
}

/// difflib's `find_longest_match` without junk: (start in a, start in b, size).
fn longest_match(
    a: &[u32],
    b: &[u32],
    alo: usize,
    ahi: usize,
    blo: usize,
    bhi: usize,
) -> (usize, usize, usize) {
    let (mut bi, mut bj, mut best) = (alo, blo, 0usize);
    let width = bhi - blo;
    let mut prev = vec![0usize; width + 1];
    let mut cur = vec![0usize; width + 1];
    for (i, ai) in a.iter().enumerate().take(ahi).skip(alo) {
        for (j, bj_tok) in b.iter().enumerate().take(bhi).skip(blo) {
            let c = j - blo + 1;
            cur[c] = if ai == bj_tok { prev[c - 1] + 1 } else { 0 };
            if cur[c] > best {
                best = cur[c];
                bi = i + 1 - best;
                bj = j + 1 - best;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (bi, bj, best)
}

/// The two sentences' scores under `mode`.
pub fn pair_scores(mode: Mode, more: &SentenceScore, less: &SentenceScore) -> (f64, f64) {
    let sum = |lp: &[f32]| lp.iter().map(|&x| x as f64).sum::<f64>();
    match mode {
        // Pseudo-log-likelihoods hold 0 where a token was not scored.
        Mode::Lmeval | Mode::Pll => (sum(&more.logprobs), sum(&less.logprobs)),
        Mode::Mean => {
            let m = |s: &SentenceScore| {
                if s.logprobs.is_empty() {
                    f64::NEG_INFINITY
                } else {
                    sum(&s.logprobs) / s.logprobs.len() as f64
                }
            };
            (m(more), m(less))
        }
        Mode::Shared => {
            let (pa, pb) = shared_positions(&more.tokens, &less.tokens);
            let pick = |s: &SentenceScore, p: &[usize]| {
                p.iter()
                    .filter_map(|&i| s.logprobs.get(i))
                    .map(|&x| x as f64)
                    .sum::<f64>()
            };
            (pick(more, &pa), pick(less, &pb))
        }
    }
}

/// One pair's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairResult {
    pub line: usize,
    pub bias_type: String,
    pub stereo_antistereo: String,
    pub sent_more: String,
    pub sent_less: String,
    pub score_more: f64,
    pub score_less: f64,
    /// score_more - score_less.
    pub diff: f64,
    /// score_more > score_less.
    pub stereotype: bool,
    /// Token-level detail for drill-down (ids, texts, log-probs, shared marks).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<PairDetail>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairDetail {
    pub more: SentenceDetail,
    pub less: SentenceDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentenceDetail {
    pub tokens: Vec<u32>,
    pub texts: Vec<String>,
    pub logprobs: Vec<f32>,
    /// Whether each token is one both sentences share.
    pub shared: Vec<bool>,
}

impl PairDetail {
    pub fn new(more: &SentenceScore, less: &SentenceScore, text: &dyn Fn(u32) -> String) -> Self {
        let (pa, pb) = shared_positions(&more.tokens, &less.tokens);
        let side = |s: &SentenceScore, p: &[usize]| {
            let mut shared = vec![false; s.tokens.len()];
            for &i in p {
                shared[i] = true;
            }
            SentenceDetail {
                tokens: s.tokens.clone(),
                texts: s.tokens.iter().map(|&t| text(t)).collect(),
                logprobs: s.logprobs.clone(),
                shared,
            }
        };
        Self {
            more: side(more, &pa),
            less: side(less, &pb),
        }
    }
}

/// pct_stereotype of one category (or of all pairs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryStats {
    pub name: String,
    pub n: usize,
    /// Pairs where the more stereotyping sentence scored higher.
    pub k: usize,
    pub pct_stereotype: f64,
    /// Wilson 95% interval of pct_stereotype.
    pub wilson95: Interval,
    /// Exact two-sided binomial test against 0.5.
    pub p_value: f64,
    /// Holm-adjusted over the categories (None for the overall row).
    pub p_holm: Option<f64>,
    /// Mean |score_more - score_less| (lm-evaluation-harness's likelihood_diff).
    pub likelihood_diff: f64,
    /// n < 30: too few pairs to read.
    pub too_small: bool,
}

fn category_stats(name: &str, results: &[&PairResult]) -> CategoryStats {
    let n = results.len();
    let k = results.iter().filter(|r| r.stereotype).count();
    let diffs: Vec<f64> = results.iter().map(|r| r.diff.abs()).collect();
    CategoryStats {
        name: name.to_string(),
        n,
        k,
        pct_stereotype: if n == 0 {
            f64::NAN
        } else {
            k as f64 / n as f64
        },
        wilson95: stats::wilson(k as u64, n as u64, stats::Z95).unwrap_or(Interval {
            lo: f64::NAN,
            hi: f64::NAN,
        }),
        p_value: stats::binom_test(k as u64, n as u64, 0.5).unwrap_or(f64::NAN),
        p_holm: None,
        likelihood_diff: stats::mean(&diffs),
        too_small: n < MIN_CATEGORY_N,
    }
}

/// Everything a pairs run reports. The mode is always recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairsReport {
    pub mode: Mode,
    pub mode_description: String,
    pub data_file: String,
    pub data_sha256: String,
    /// Set when the data file is lmscope's own example (not CrowS-Pairs).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    pub prefix_token: u32,
    pub overall: CategoryStats,
    /// Sorted by name; Holm's adjustment runs over these.
    pub categories: Vec<CategoryStats>,
    pub pairs: Vec<PairResult>,
    /// True when the run was cancelled before every pair was scored.
    pub partial: bool,
}

/// The pair result for already-scored sentences.
pub fn pair_result(
    pair: &Pair,
    mode: Mode,
    more: &SentenceScore,
    less: &SentenceScore,
) -> PairResult {
    let (a, b) = pair_scores(mode, more, less);
    let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let stereotype = if mode == Mode::Pll {
        round3(a) > round3(b)
    } else {
        a > b
    };
    PairResult {
        line: pair.line,
        bias_type: pair.bias_type.clone(),
        stereo_antistereo: pair.stereo_antistereo.clone(),
        sent_more: pair.sent_more.clone(),
        sent_less: pair.sent_less.clone(),
        score_more: a,
        score_less: b,
        diff: a - b,
        stereotype,
        detail: None,
    }
}

/// Aggregates pair results: overall and per category, with Holm's
/// adjustment over the categories.
pub fn summarise(results: &[PairResult]) -> (CategoryStats, Vec<CategoryStats>) {
    let all: Vec<&PairResult> = results.iter().collect();
    let overall = category_stats("all", &all);
    let mut by: BTreeMap<&str, Vec<&PairResult>> = BTreeMap::new();
    for r in results {
        by.entry(r.bias_type.as_str()).or_default().push(r);
    }
    let mut cats: Vec<CategoryStats> = by
        .iter()
        .map(|(name, rs)| category_stats(name, rs))
        .collect();
    let adj = stats::holm(&cats.iter().map(|c| c.p_value).collect::<Vec<_>>());
    for (c, a) in cats.iter_mut().zip(adj) {
        c.p_holm = Some(a);
    }
    (overall, cats)
}

/// SHA-256 of the example file shipped in assets/bias/ (ours, not CrowS-Pairs).
pub fn is_shipped_example(sha256: &str) -> bool {
    let bytes = include_bytes!("../../../assets/bias/example_pairs.csv");
    hex(&Sha256::digest(bytes)) == sha256
}

pub const EXAMPLE_NOTE: &str = "lmscope's own example pairs (assets/bias/example_pairs.csv): a smoke test, \
not CrowS-Pairs; the numbers are not comparable to published scores";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_handles_quotes_commas_newlines_and_crlf() {
        let t = "a,b,c\r\n1,\"x, \"\"y\"\"\",\"two\nlines\"\r\n\n3,,\n";
        let r = parse_csv(t).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            (2, vec!["1".into(), "x, \"y\"".into(), "two\nlines".into()])
        );
        assert_eq!(r[2], (5, vec!["3".into(), "".into(), "".into()]));
        assert_eq!(
            parse_csv("a,\"b").unwrap_err(),
            CsvError::UnclosedQuote { line: 1 }
        );
        assert_eq!(
            parse_csv("\"a\"b").unwrap_err(),
            CsvError::AfterQuote { line: 1 }
        );
    }

    #[test]
    fn reads_crows_pairs_columns_by_name() {
        let t = "\u{feff},sent_more,sent_less,stereo_antistereo,bias_type,annotations\n\
                 0,He cried.,She cried.,antistereo,gender,\"['gender', 'x']\"\n";
        let f = read_pairs(t.as_bytes()).unwrap();
        assert_eq!(f.pairs.len(), 1);
        assert_eq!(f.pairs[0].sent_more, "He cried.");
        assert_eq!(f.pairs[0].bias_type, "gender");
        assert_eq!(f.pairs[0].line, 2);
        assert_eq!(f.sha256.len(), 64);
        assert_eq!(
            read_pairs(b"sent_more,sent_less\n").unwrap_err(),
            CsvError::MissingColumn("stereo_antistereo")
        );
        let short = "sent_more,sent_less,stereo_antistereo,bias_type\na,b,stereo\n";
        assert!(matches!(
            read_pairs(short.as_bytes()),
            Err(CsvError::FieldCount { line: 2, .. })
        ));
        assert_eq!(
            read_pairs(b"sent_more,sent_less,stereo_antistereo,bias_type\n").unwrap_err(),
            CsvError::NoPairs
        );
    }

    #[test]
    fn shared_positions_follow_difflib() {
        // difflib.SequenceMatcher(None, [1,2,3,4,5], [1,9,3,4,5], autojunk=False):
        // blocks (0,0,1), (2,2,3).
        let (a, b) = shared_positions(&[1, 2, 3, 4, 5], &[1, 9, 3, 4, 5]);
        assert_eq!(a, vec![0, 2, 3, 4]);
        assert_eq!(b, vec![0, 2, 3, 4]);
        // Different lengths: [7, 1, 2] vs [8, 8, 1, 2] -> block (1, 2, 2).
        assert_eq!(
            shared_positions(&[7, 1, 2], &[8, 8, 1, 2]),
            (vec![1, 2], vec![2, 3])
        );
        assert_eq!(shared_positions(&[], &[1]), (vec![], vec![]));
    }

    #[test]
    fn modes_score_as_documented() {
        let more = SentenceScore {
            tokens: vec![5, 1, 2],
            logprobs: vec![-1.0, -2.0, -3.0],
        };
        let less = SentenceScore {
            tokens: vec![6, 7, 1, 2],
            logprobs: vec![-0.5, -0.5, -1.0, -1.0],
        };
        assert_eq!(pair_scores(Mode::Lmeval, &more, &less), (-6.0, -3.0));
        assert_eq!(pair_scores(Mode::Mean, &more, &less), (-2.0, -0.75));
        assert_eq!(pair_scores(Mode::Shared, &more, &less), (-5.0, -2.0));
    }

    #[test]
    fn ties_count_against_the_stereotype() {
        let p = Pair {
            line: 2,
            sent_more: "a".into(),
            sent_less: "b".into(),
            stereo_antistereo: "stereo".into(),
            bias_type: "x".into(),
        };
        let s = SentenceScore {
            tokens: vec![1],
            logprobs: vec![-1.0],
        };
        assert!(!pair_result(&p, Mode::Lmeval, &s, &s).stereotype);
    }

    #[test]
    fn summary_marks_small_categories_and_adjusts() {
        let mk = |cat: &str, st: bool| PairResult {
            line: 0,
            bias_type: cat.into(),
            stereo_antistereo: "stereo".into(),
            sent_more: String::new(),
            sent_less: String::new(),
            score_more: 0.0,
            score_less: 0.0,
            diff: if st { 1.0 } else { -2.0 },
            stereotype: st,
            detail: None,
        };
        let mut rs: Vec<PairResult> = (0..40).map(|i| mk("a", i % 4 != 0)).collect();
        rs.extend((0..10).map(|i| mk("b", i % 2 == 0)));
        let (all, cats) = summarise(&rs);
        assert_eq!((all.n, all.k), (50, 35));
        assert_eq!(cats.len(), 2);
        assert!(!cats[0].too_small && cats[1].too_small);
        assert_eq!(cats[0].likelihood_diff, 1.25);
        assert!(cats[0].p_holm.unwrap() >= cats[0].p_value);
    }

    #[test]
    fn the_shipped_example_is_recognised() {
        let bytes = include_bytes!("../../../assets/bias/example_pairs.csv");
        let f = read_pairs(bytes).unwrap();
        assert!(is_shipped_example(&f.sha256));
        assert_eq!(f.pairs.len(), 24);
    }
}
