//! The bias views' state: the quick check on the current prompt and the
//! bias pane (probe suite, minimal pairs), and the pure functions that turn
//! their reports into rows. The handlers are in `ui::bias`.

use std::path::PathBuf;

use crate::analysis::bias::pairs::{PairResult, PairsReport};
use crate::analysis::bias::probe::{ProbeReport, ProbeResult};
use crate::analysis::bias::quick;
use crate::analysis::bias::task::QuickCheck;

/// The built-in suite the pane runs.
pub const SUITE: &str = "default";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BiasView {
    #[default]
    None,
    Quick,
    Pane,
}

/// The quick check: the last result, or why there is none.
#[derive(Clone, Debug, Default)]
pub struct QuickState {
    /// The task in flight.
    pub id: Option<u64>,
    pub result: Option<QuickCheck>,
    pub error: Option<String>,
    /// What the check ran on ("prompt" or "current run").
    pub source: String,
    /// The user's swaps as typed ("doctor|nurse, he|she"); empty: defaults.
    pub swaps: String,
    /// The swaps being edited (every key goes here meanwhile).
    pub editing: Option<String>,
    /// First line of the aligned-token list.
    pub scroll: usize,
}

/// A finished (or cancelled, partial) run of the pane.
#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Probes(ProbeReport),
    Pairs(PairsReport),
}

impl Report {
    pub fn partial(&self) -> bool {
        match self {
            Report::Probes(r) => r.partial,
            Report::Pairs(r) => r.partial,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Report::Probes(r) => format!("suite {} · {} probes", r.suite, r.probes.len()),
            Report::Pairs(r) => format!(
                "pairs {} · mode {} · {} pairs",
                r.data_file,
                r.mode.as_str(),
                r.pairs.len()
            ),
        }
    }

    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        match self {
            Report::Probes(r) => serde_json::to_vec_pretty(r),
            Report::Pairs(r) => serde_json::to_vec_pretty(r),
        }
    }
}

/// How the pane's table is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// As the report lists the categories.
    #[default]
    Report,
    /// Largest effect (distance from "no difference") first.
    Effect,
    Name,
    /// Most items first.
    N,
}

impl SortBy {
    pub fn next(self) -> Self {
        match self {
            SortBy::Report => SortBy::Effect,
            SortBy::Effect => SortBy::Name,
            SortBy::Name => SortBy::N,
            SortBy::N => SortBy::Report,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::Report => "report order",
            SortBy::Effect => "effect",
            SortBy::Name => "name",
            SortBy::N => "n",
        }
    }
}

/// What the pane is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    Suite,
    Pairs,
}

#[derive(Clone, Debug, Default)]
pub struct PaneState {
    pub id: Option<u64>,
    pub running: Option<RunKind>,
    /// (done, total) of the run in flight.
    pub progress: (usize, usize),
    pub report: Option<Report>,
    pub error: Option<String>,
    pub sort: SortBy,
    /// Selected row of the sorted table.
    pub selected: usize,
    /// The detail of the selected row is open.
    pub detail: bool,
    /// Selected item in the detail.
    pub item: usize,
    pub saved: Option<PathBuf>,
    /// A suite or pairs file being typed (every key goes here meanwhile).
    pub editing: Option<String>,
}

#[derive(Clone, Debug)]
pub struct BiasState {
    pub view: BiasView,
    next_id: u64,
    pub quick: QuickState,
    pub pane: PaneState,
    /// Where results are saved (`bias/` in the data directory).
    pub save_dir: PathBuf,
}

impl Default for BiasState {
    fn default() -> Self {
        Self {
            view: BiasView::None,
            next_id: 0,
            quick: QuickState::default(),
            pane: PaneState::default(),
            save_dir: crate::store::paths::data_dir().join("bias"),
        }
    }
}

impl BiasState {
    pub fn is_open(&self) -> bool {
        self.view != BiasView::None
    }

    /// Whether a text field of ours takes every key.
    pub fn editing(&self) -> bool {
        self.quick.editing.is_some() || self.pane.editing.is_some()
    }

    /// Whether a task of ours is in flight.
    pub fn busy(&self) -> bool {
        self.quick.id.is_some() || self.pane.id.is_some()
    }

    pub(super) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// One row of the pane's table, whatever the report.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub name: String,
    pub n: usize,
    /// The effect and its 95% interval.
    pub effect: f64,
    pub lo: f64,
    pub hi: f64,
    /// The value meaning "no difference" (0 for a log-prob difference,
    /// 0.5 for pct_stereotype).
    pub null: f64,
    /// A second figure (JS divergence; likelihood_diff).
    pub extra: f64,
    /// The p-value shown (Holm-adjusted for pairs), if any.
    pub p: Option<f64>,
    pub significant: bool,
    pub too_small: bool,
}

/// Rows in the report's order.
pub fn rows(report: &Report) -> Vec<Row> {
    match report {
        Report::Probes(r) => r
            .categories
            .iter()
            .map(|c| {
                // The attribute difference (A - B); none (NaN) when the
                // category's frames score no attributes (JS still shows).
                let nan = f64::NAN;
                let (effect, lo, hi) = c
                    .attribute_diff
                    .map_or((nan, nan, nan), |d| (d.mean, d.ci95.lo, d.ci95.hi));
                Row {
                    name: c.name.clone(),
                    n: c.n,
                    effect,
                    lo,
                    hi,
                    null: 0.0,
                    extra: c.js.mean,
                    p: None,
                    // A 95% interval that excludes "no difference"
                    // (uncorrected: the suite reports no p-values).
                    significant: lo > 0.0 || hi < 0.0,
                    too_small: false,
                }
            })
            .collect(),
        Report::Pairs(r) => r
            .categories
            .iter()
            .map(|c| Row {
                name: c.name.clone(),
                n: c.n,
                effect: c.pct_stereotype,
                lo: c.wilson95.lo,
                hi: c.wilson95.hi,
                null: 0.5,
                extra: c.likelihood_diff,
                p: c.p_holm,
                significant: c.p_holm.is_some_and(|p| p < 0.05),
                too_small: c.too_small,
            })
            .collect(),
    }
}

/// Rows in the pane's order.
pub fn sorted_rows(report: &Report, sort: SortBy) -> Vec<Row> {
    let mut r = rows(report);
    match sort {
        SortBy::Report => {}
        SortBy::Effect => r.sort_by(|a, b| {
            // Rows without an effect go last.
            let size = |r: &Row| {
                let d = (r.effect - r.null).abs();
                if d.is_finite() { d } else { -1.0 }
            };
            size(b)
                .total_cmp(&size(a))
                .then_with(|| a.name.cmp(&b.name))
        }),
        SortBy::Name => r.sort_by(|a, b| a.name.cmp(&b.name)),
        SortBy::N => r.sort_by(|a, b| b.n.cmp(&a.n).then_with(|| a.name.cmp(&b.name))),
    }
    r
}

/// A probe's size for the drill-down: mean |attribute diff|, else JS.
pub fn probe_size(p: &ProbeResult) -> f64 {
    p.mean_abs_attribute_diff().unwrap_or(p.divergence.js)
}

/// The items of a category, largest difference first.
pub enum Items<'a> {
    Probes(Vec<&'a ProbeResult>),
    Pairs(Vec<&'a PairResult>),
}

impl Items<'_> {
    pub fn len(&self) -> usize {
        match self {
            Items::Probes(v) => v.len(),
            Items::Pairs(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn items<'a>(report: &'a Report, category: &str) -> Items<'a> {
    match report {
        Report::Probes(r) => {
            let mut v: Vec<&ProbeResult> =
                r.probes.iter().filter(|p| p.category == category).collect();
            v.sort_by(|a, b| probe_size(b).total_cmp(&probe_size(a)));
            Items::Probes(v)
        }
        Report::Pairs(r) => {
            let mut v: Vec<&PairResult> =
                r.pairs.iter().filter(|p| p.bias_type == category).collect();
            v.sort_by(|a, b| b.diff.abs().total_cmp(&a.diff.abs()));
            Items::Pairs(v)
        }
    }
}

/// Parses the user's swaps: "X|Y" (or "X=Y") items separated by commas.
pub fn parse_swaps(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let spec = if s.contains('|') {
                s.to_string()
            } else {
                s.replacen('=', "|", 1)
            };
            quick::parse_swap(&spec)
        })
        .collect()
}

/// The swaps in use, as a line ("defaults: he|she, his|her, ...").
pub fn swaps_label(q: &QuickState) -> String {
    if q.swaps.trim().is_empty() {
        let d: Vec<String> = quick::DEFAULT_SWAPS
            .iter()
            .map(|(a, b)| format!("{a}|{b}"))
            .collect();
        format!("defaults: {}", d.join(", "))
    } else {
        q.swaps.trim().to_string()
    }
}
