//! The bias views: the quick check on the current prompt and the bias
//! pane (probe suite, minimal pairs), their update, and the pure functions
//! that turn their reports into rows. The checks run on the engine thread
//! as tasks ([`crate::analysis::bias::task`]); nothing here blocks.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};

use super::Out;
use crate::analysis::bias::pairs::{self, Mode};
use crate::analysis::bias::pairs::{PairResult, PairsReport};
use crate::analysis::bias::probe::{ProbeReport, ProbeResult};
use crate::analysis::bias::quick;
use crate::analysis::bias::suite::Suite;
use crate::analysis::bias::task::QuickCheck;
use crate::analysis::bias::task::{PairsTask, QuickTask, SuiteTask};
use crate::engine::Prompt;
use crate::engine::handle::{EngineCommand, EngineEvent, Task, TaskOutput};
use crate::ui::keymap::Action;
use crate::ui::state::{Effect, EngineState, Level};

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

    fn new_id(&mut self) -> u64 {
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

/// What the bias views read from the rest of the interface.
pub struct Ctx {
    pub engine: EngineState,
    /// What the quick check looks at, and where it came from ("prompt" or
    /// "current run"); None when there is nothing to check.
    pub prompt: Option<(Prompt, &'static str)>,
    /// Alternatives shown per token.
    pub top_n: usize,
}

/// The task for a suite (a built-in name or a .toml path; empty: the
/// default) or a pairs file (.csv, scored in lmeval mode), with its size.
pub fn task_for(spec: &str) -> Result<(Box<dyn Task>, usize, RunKind), String> {
    let spec = spec.trim();
    if spec.to_ascii_lowercase().ends_with(".csv") {
        let bytes = std::fs::read(spec).map_err(|e| format!("cannot read {spec}: {e}"))?;
        let file = pairs::read_pairs(&bytes)
            .map_err(|e| format!("{spec} is not a usable pairs file: {e}"))?;
        let n = file.pairs.len();
        let task = PairsTask {
            file,
            data_file: spec.to_string(),
            mode: Mode::Lmeval,
        };
        return Ok((Box::new(task), n, RunKind::Pairs));
    }
    let suite =
        Suite::load(if spec.is_empty() { SUITE } else { spec }).map_err(|e| e.to_string())?;
    let n = suite.n_probes();
    Ok((Box::new(SuiteTask { suite }), n, RunKind::Suite))
}

fn report_rows(report: &Report) -> usize {
    match report {
        Report::Probes(r) => r.categories.len(),
        Report::Pairs(r) => r.categories.len(),
    }
}

fn downcast<T: 'static>(o: TaskOutput, what: &str) -> Result<T, String> {
    o.downcast::<T>()
        .map(|b| *b)
        .map_err(|_| format!("the engine answered the {what} with something else"))
}

/// Whether a task may start; says why not.
fn can_start(engine: &EngineState, out: &mut Out) -> bool {
    match super::busy(engine) {
        None => true,
        Some(_) if *engine == EngineState::Running => {
            out.say(Level::Warn, "the engine is busy; Esc cancels what runs");
            false
        }
        Some((level, why)) => {
            out.say(level, why);
            false
        }
    }
}

impl BiasState {
    /// The selected row's category name.
    pub fn selected_category(&self) -> Option<String> {
        let report = self.pane.report.as_ref()?;
        let rows = sorted_rows(report, self.pane.sort);
        rows.get(self.pane.selected.min(rows.len().saturating_sub(1)))
            .map(|r| r.name.clone())
    }

    fn send(&mut self, task: Box<dyn Task>, out: &mut Out) -> u64 {
        let id = self.new_id();
        out.send(EngineCommand::Task { id, task });
        out.engine = Some(EngineState::Running);
        id
    }

    /// `quick_check`: opens the quick view and runs the check.
    pub fn quick_check(&mut self, ctx: &Ctx, out: &mut Out) {
        self.view = BiasView::Quick;
        self.run_quick(ctx, out);
    }

    fn run_quick(&mut self, ctx: &Ctx, out: &mut Out) {
        if self.quick.id.is_some() || !can_start(&ctx.engine, out) {
            return;
        }
        let swaps = match parse_swaps(&self.quick.swaps) {
            Ok(s) => s,
            Err(e) => {
                self.quick.error = Some(e.clone());
                return out.say(Level::Error, e);
            }
        };
        let Some((prompt, source)) = ctx.prompt.clone() else {
            let e = "nothing to check: type a prompt or run one first".to_string();
            self.quick.error = Some(e.clone());
            return out.say(Level::Warn, e);
        };
        let k = ctx.top_n.clamp(1, 50);
        let id = self.send(Box::new(QuickTask { prompt, swaps, k }), out);
        let q = &mut self.quick;
        q.id = Some(id);
        q.error = None;
        q.source = source.to_string();
        q.scroll = 0;
        out.say(Level::Info, "quick check running; Esc cancels");
    }

    /// `bias_pane`: opens or closes the pane.
    pub fn toggle_pane(&mut self, out: &mut Out) {
        if self.view == BiasView::Pane {
            self.view = BiasView::None;
            return;
        }
        self.view = BiasView::Pane;
        if self.pane.report.is_none() && self.pane.id.is_none() {
            out.say(
                Level::Info,
                "bias pane: r runs the probe suite, p the example pairs",
            );
        }
    }

    fn run_pane(&mut self, kind: RunKind, engine: &EngineState, out: &mut Out) {
        let task = match kind {
            RunKind::Suite => task_for(SUITE),
            RunKind::Pairs => PairsTask::example(Mode::Lmeval).map(|t| {
                let n = t.file.pairs.len();
                (Box::new(t) as Box<dyn Task>, n, RunKind::Pairs)
            }),
        };
        self.start_pane(task, engine, out);
    }

    /// Runs a task (from [`task_for`]) in the pane.
    pub fn start_pane(
        &mut self,
        task: Result<(Box<dyn Task>, usize, RunKind), String>,
        engine: &EngineState,
        out: &mut Out,
    ) {
        if self.pane.id.is_some() || !can_start(engine, out) {
            return;
        }
        let (task, total, kind) = match task {
            Ok(t) => t,
            Err(e) => {
                self.pane.error = Some(e.clone());
                return out.say(Level::Error, e);
            }
        };
        let id = self.send(task, out);
        let p = &mut self.pane;
        p.id = Some(id);
        p.running = Some(kind);
        p.progress = (0, total);
        p.error = None;
        p.saved = None;
        let what = match kind {
            RunKind::Suite => "probe suite",
            RunKind::Pairs => "example pairs",
        };
        out.say(Level::Info, format!("running the {what}; Esc cancels"));
    }

    /// Esc or q with nothing running: close the detail, else the view.
    pub fn close(&mut self) {
        if self.view == BiasView::Pane && self.pane.detail {
            self.pane.detail = false;
        } else {
            self.view = BiasView::None;
        }
    }

    /// The keys of the bias context.
    pub fn update(&mut self, action: Action, ctx: &Ctx, out: &mut Out) {
        use Action::*;
        let view = self.view;
        match action {
            BiasRun if view == BiasView::Quick => self.run_quick(ctx, out),
            BiasRun => self.run_pane(RunKind::Suite, &ctx.engine, out),
            BiasPairs if view == BiasView::Pane => self.run_pane(RunKind::Pairs, &ctx.engine, out),
            BiasSwaps if view == BiasView::Quick => {
                self.quick.editing = Some(self.quick.swaps.clone());
            }
            BiasOpen if view == BiasView::Pane => {
                self.pane.editing = Some(String::new());
            }
            BiasSort if view == BiasView::Pane => {
                let p = &mut self.pane;
                p.sort = p.sort.next();
                p.selected = 0;
                p.detail = false;
            }
            BiasDetail if view == BiasView::Pane && self.pane.report.is_some() => {
                self.pane.detail = true;
                self.pane.item = 0;
            }
            BiasSave => self.save(out),
            LineUp | LineDown | PageUp | PageDown => {
                let delta: isize = match action {
                    LineUp => -1,
                    LineDown => 1,
                    PageUp => -10,
                    _ => 10,
                };
                let step = |v: usize, max: usize| -> usize {
                    (v as isize + delta).clamp(0, max.saturating_sub(1) as isize) as usize
                };
                match view {
                    BiasView::Quick => {
                        let n = self.quick.result.as_ref().map_or(0, |r| r.aligned.len());
                        self.quick.scroll = step(self.quick.scroll, n);
                    }
                    BiasView::Pane => {
                        let Some(report) = self.pane.report.as_ref() else {
                            return;
                        };
                        if self.pane.detail {
                            let n = self
                                .selected_category()
                                .map_or(0, |c| items(report, &c).len());
                            self.pane.item = step(self.pane.item, n);
                        } else {
                            let n = report_rows(report);
                            self.pane.selected = step(self.pane.selected, n);
                        }
                    }
                    BiasView::None => {}
                }
            }
            CloseView => self.close(),
            _ => {}
        }
    }

    /// Every key while the swaps or a file name are edited.
    pub fn edit_key(&mut self, k: &KeyEvent, ctx: &Ctx, out: &mut Out) {
        if let Some(text) = self.pane.editing.as_mut() {
            match k.code {
                KeyCode::Esc => self.pane.editing = None,
                KeyCode::Enter => {
                    let spec = text.clone();
                    self.pane.editing = None;
                    out.effect(Effect::OpenBiasFile(spec));
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            return;
        }
        let Some(text) = self.quick.editing.as_mut() else {
            return;
        };
        match k.code {
            KeyCode::Esc => self.quick.editing = None,
            KeyCode::Enter => {
                let value = text.clone();
                match parse_swaps(&value) {
                    Ok(_) => {
                        self.quick.swaps = value.trim().to_string();
                        self.quick.editing = None;
                        self.run_quick(ctx, out);
                    }
                    Err(e) => out.say(Level::Error, e),
                }
            }
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
    }

    /// `bias_save`: the shown results as JSON, written atomically (by the
    /// event loop: [`Effect::SaveBias`]).
    fn save(&mut self, out: &mut Out) {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (name, json) = match self.view {
            BiasView::Quick => match &self.quick.result {
                Some(r) => ("quick", serde_json::to_vec_pretty(r)),
                None => return out.say(Level::Warn, "no quick check to save yet"),
            },
            BiasView::Pane => match &self.pane.report {
                Some(r @ Report::Probes(_)) => ("suite", r.to_json()),
                Some(r @ Report::Pairs(_)) => ("pairs", r.to_json()),
                None => return out.say(Level::Warn, "no results to save yet: r runs the suite"),
            },
            BiasView::None => return,
        };
        match json {
            Ok(json) => {
                let path = self.save_dir.join(format!("bias-{name}-{stamp}.json"));
                out.effect(Effect::SaveBias { path, json });
            }
            Err(e) => out.say(Level::Error, format!("saving: {e}")),
        }
    }

    /// Results saved at `path`.
    pub fn saved(&mut self, path: PathBuf, out: &mut Out) {
        out.say(Level::Info, format!("saved {}", path.display()));
        if self.view == BiasView::Pane {
            self.pane.saved = Some(path);
        }
    }

    /// The engine's task events.
    pub fn on_event(&mut self, event: EngineEvent, out: &mut Out) {
        match event {
            EngineEvent::TaskProgress { id, done, total } if self.pane.id == Some(id) => {
                self.pane.progress = (done, total);
            }
            EngineEvent::TaskDone { id, result } if self.quick.id == Some(id) => {
                self.quick.id = None;
                out.engine = Some(EngineState::Idle);
                match result.and_then(|o| downcast::<QuickCheck>(o, "quick check")) {
                    Ok(r) => {
                        let msg = format!(
                            "quick check: {} replacement{}, JS {:.4} nats",
                            r.swap.replacements,
                            if r.swap.replacements == 1 { "" } else { "s" },
                            r.swap.divergence.js
                        );
                        self.quick.result = Some(r);
                        self.quick.error = None;
                        out.say(Level::Info, msg);
                    }
                    Err(e) => {
                        self.quick.error = Some(e.clone());
                        out.say(Level::Error, format!("quick check: {e}"));
                    }
                }
            }
            EngineEvent::TaskDone { id, result } if self.pane.id == Some(id) => {
                let p = &mut self.pane;
                p.id = None;
                let kind = p.running.take();
                out.engine = Some(EngineState::Idle);
                let report = result.and_then(|o| match kind {
                    Some(RunKind::Pairs) => downcast::<PairsReport>(o, "pairs").map(Report::Pairs),
                    _ => downcast::<ProbeReport>(o, "suite").map(Report::Probes),
                });
                match report {
                    Ok(r) => {
                        let msg = if r.partial() {
                            format!("cancelled: partial results ({})", r.label())
                        } else {
                            format!("finished: {}; enter shows a category, w saves", r.label())
                        };
                        let p = &mut self.pane;
                        p.report = Some(r);
                        p.selected = 0;
                        p.item = 0;
                        p.detail = false;
                        out.say(Level::Info, msg);
                    }
                    Err(e) => {
                        self.pane.error = Some(e.clone());
                        out.say(Level::Error, format!("bias run: {e}"));
                    }
                }
            }
            _ => {} // A replaced or unknown task.
        }
    }
}
