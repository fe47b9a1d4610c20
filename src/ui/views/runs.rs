//! The run tree: every run and branch of the session, which one is shown,
//! and how they convert to and from a session file.

use super::compare::{CompareColumn, CompareState};
use crate::engine::types::{FinishReason, StepRecord, Timings};
use crate::engine::{Prompt, Request};
use crate::store::session::{BranchPoint, ModelIdentity, Run, Session};
use crate::ui::state::Tok;

/// One run of the session: a prompt's generation, or a branch of a run
/// (`parent`: the run it left and the step whose token it replaced).
#[derive(Clone, Debug, PartialEq)]
pub struct RunNode {
    pub id: u64,
    pub parent: Option<(u64, usize)>,
    pub request: Request,
    pub tokens: Vec<Tok>,
    pub prompt_len: usize,
    pub cache_len: usize,
    pub captures: bool,
    pub timings: Timings,
    pub finish: Option<FinishReason>,
    /// The engine has started it (a branch that could not start is dropped).
    pub started: bool,
    /// The prompt's token ids.
    pub prompt_ids: Vec<u32>,
    /// Opened from a session file: the engine does not hold it.
    pub loaded: bool,
}

impl RunNode {
    /// A prompt's run, before the engine has read the prompt.
    pub fn new(id: u64, request: Request) -> Self {
        Self {
            id,
            parent: None,
            captures: request.capture_attention,
            request,
            tokens: Vec::new(),
            prompt_len: 0,
            cache_len: 0,
            timings: Timings::default(),
            finish: None,
            started: false,
            prompt_ids: Vec::new(),
            loaded: false,
        }
    }

    /// A branch of `parent` at `step`: the parent's tokens before the step.
    pub fn branch_of(id: u64, parent: &RunNode, step: usize) -> Self {
        let keep = (parent.prompt_len + step).min(parent.tokens.len());
        Self {
            id,
            parent: Some((parent.id, step)),
            request: parent.request.clone(),
            tokens: parent.tokens[..keep].to_vec(),
            prompt_len: parent.prompt_len,
            cache_len: keep.saturating_sub(1),
            captures: parent.captures,
            timings: Timings {
                prompt_tokens: parent.prompt_len,
                generated: step,
                ..Timings::default()
            },
            finish: None,
            started: false,
            prompt_ids: parent.prompt_ids.clone(),
            loaded: false,
        }
    }

    /// The generated tokens' records.
    pub fn records(&self) -> impl Iterator<Item = &StepRecord> {
        self.tokens.iter().filter_map(|t| t.record.as_deref())
    }
}

/// Where the shown run sits among its siblings, for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchPosition {
    /// 1-based index among the siblings, and how many there are.
    pub index: usize,
    pub count: usize,
    /// The run and step this branch left (None for a prompt's run).
    pub parent: Option<(u64, usize)>,
    /// How many branches leave the shown run.
    pub children: usize,
}

/// A move through the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    PrevSibling,
    NextSibling,
    Parent,
    /// The first branch leaving at or after this step.
    Child(usize),
}

#[derive(Clone, Debug, Default)]
pub struct RunTree {
    /// Every run and branch of this session, in start order.
    pub runs: Vec<RunNode>,
    /// The newest id handed out (generation, branch or comparison): that
    /// run's events move the engine state.
    pub newest: u64,
    /// The run the main view shows.
    pub shown: u64,
}

impl RunTree {
    /// A fresh id for a run, branch or comparison.
    pub fn next_id(&mut self) -> u64 {
        self.newest += 1;
        self.newest
    }

    pub fn node(&self, id: u64) -> Option<&RunNode> {
        self.runs.iter().find(|n| n.id == id)
    }

    pub fn node_mut(&mut self, id: u64) -> Option<&mut RunNode> {
        self.runs.iter_mut().find(|n| n.id == id)
    }

    pub fn shown_node(&self) -> Option<&RunNode> {
        self.node(self.shown)
    }

    /// Runs that left run `id`, by the step they left at (then start order).
    pub fn children(&self, id: u64) -> Vec<&RunNode> {
        let mut c: Vec<&RunNode> = self
            .runs
            .iter()
            .filter(|n| n.parent.is_some_and(|(p, _)| p == id))
            .collect();
        c.sort_by_key(|n| (n.parent.map(|(_, s)| s), n.id));
        c
    }

    /// The shown run's siblings (itself included, in start order):
    /// branches of the same run at the same step, or the prompt runs.
    pub fn siblings(&self) -> Vec<u64> {
        match self.shown_node().map(|n| n.parent) {
            None => Vec::new(),
            Some(p) => self
                .runs
                .iter()
                .filter(|n| n.parent == p)
                .map(|n| n.id)
                .collect(),
        }
    }

    /// Where the shown run sits in the tree (None before any run).
    pub fn position(&self) -> Option<BranchPosition> {
        let node = self.shown_node()?;
        let siblings = self.siblings();
        Some(BranchPosition {
            index: siblings.iter().position(|&i| i == self.shown).unwrap_or(0) + 1,
            count: siblings.len(),
            parent: node.parent,
            children: self.children(self.shown).len(),
        })
    }

    /// Token indices where branches leave the shown run, and where the
    /// shown run left its parent (`prompt_len`: the shown run's).
    pub fn marks(&self, prompt_len: usize) -> Vec<usize> {
        let mut marks: Vec<usize> = self
            .children(self.shown)
            .iter()
            .filter_map(|c| c.parent.map(|(_, s)| prompt_len + s))
            .collect();
        if let Some((_, s)) = self.shown_node().and_then(|n| n.parent) {
            marks.push(prompt_len + s);
        }
        marks.sort_unstable();
        marks.dedup();
        marks
    }

    /// The run a move leads to, and the step where it parts from the shown
    /// run; or why there is none.
    pub fn target(&self, m: Move) -> Result<(u64, Option<usize>), &'static str> {
        if self.shown_node().is_none() {
            return Err("no run yet: run a prompt first");
        }
        let target = match m {
            Move::PrevSibling | Move::NextSibling => {
                let sib = self.siblings();
                let i = sib.iter().position(|&i| i == self.shown).unwrap_or(0);
                if sib.len() < 2 {
                    return Err("this run has no sibling branches");
                }
                let j = if m == Move::NextSibling {
                    (i + 1) % sib.len()
                } else {
                    (i + sib.len() - 1) % sib.len()
                };
                sib[j]
            }
            Move::Parent => match self.shown_node().and_then(|n| n.parent) {
                Some((p, _)) if self.node(p).is_some() => p,
                _ => return Err("this run is not a branch"),
            },
            Move::Child(here) => {
                let children = self.children(self.shown);
                let pick = children
                    .iter()
                    .find(|c| c.parent.is_some_and(|(_, s)| s >= here))
                    .or(children.first());
                match pick {
                    Some(c) => c.id,
                    None => return Err("no branch leaves this run"),
                }
            }
        };
        let parting = match m {
            Move::Parent => self.shown_node().and_then(|n| n.parent),
            _ => self.node(target).and_then(|n| n.parent),
        };
        Ok((target, parting.map(|(_, s)| s)))
    }

    /// Everything to see this session's runs again: every started run and
    /// branch (parents by index), then the compare columns. None before
    /// any run. `template`: the model's chat template, kept with a chat
    /// prompt.
    pub fn to_session(
        &self,
        compare: Option<&CompareState>,
        model: ModelIdentity,
        template: Option<String>,
        created: u64,
    ) -> Option<Session> {
        let started: Vec<&RunNode> = self.runs.iter().filter(|n| n.started).collect();
        let cmp = compare.filter(|c| c.columns.iter().any(|col| !col.records.is_empty()));
        let first = started
            .first()
            .map(|n| &n.request)
            .or_else(|| cmp.and_then(|c| c.request.as_ref()))?;
        let template = match first.prompt {
            Prompt::Chat(_) => template,
            _ => None,
        };
        let prompt_tokens = started
            .first()
            .map(|n| n.prompt_ids.clone())
            .unwrap_or_default();
        let mut session = Session::new(model, first.prompt.clone(), prompt_tokens, template);
        if created > 0 {
            session.created_unix = created;
        }
        let index = |id: u64| started.iter().position(|n| n.id == id);
        for n in &started {
            let steps: Vec<StepRecord> = n.records().cloned().collect();
            session.runs.push(Run {
                label: match n.parent {
                    None => format!("run {}", n.id),
                    Some((p, s)) => format!("run {} (branch of run {p} at step {s})", n.id),
                },
                request: n.request.clone(),
                parent: n
                    .parent
                    .and_then(|(p, step)| index(p).map(|run| BranchPoint { run, step })),
                text: steps.iter().map(|s| s.text.as_str()).collect(),
                steps,
                finish: n.finish,
                timings: n.timings,
                prompt_texts: n.tokens[..n.prompt_len.min(n.tokens.len())]
                    .iter()
                    .map(|t| t.text.clone())
                    .collect(),
            });
        }
        if let Some(c) = cmp {
            let request = c.request.clone().unwrap_or_else(|| first.clone());
            for col in &c.columns {
                session.compare.push(session.runs.len());
                session.runs.push(Run {
                    label: col.preset.clone(),
                    request: Request {
                        sampler: col.settings.clone(),
                        ..request.clone()
                    },
                    parent: None,
                    steps: col.records.clone(),
                    text: col.text.clone(),
                    finish: col.finish,
                    timings: col.timings,
                    prompt_texts: c.prompt.clone(),
                });
            }
        }
        Some(session)
    }

    /// Replaces the runs with a session's (they are not in the engine: they
    /// can be looked at, not branched); returns its comparison, if any.
    pub fn load(&mut self, session: &Session) -> Option<CompareState> {
        self.runs.clear();
        let mut ids: Vec<Option<u64>> = Vec::new();
        for (i, r) in session.runs.iter().enumerate() {
            if session.compare.contains(&i) {
                ids.push(None);
                continue;
            }
            let id = self.next_id();
            ids.push(Some(id));
            let mut tokens: Vec<Tok> = r
                .prompt_texts
                .iter()
                .map(|t| Tok {
                    text: t.clone(),
                    record: None,
                })
                .collect();
            let prompt_len = tokens.len();
            tokens.extend(r.steps.iter().map(|s| Tok {
                text: s.text.clone(),
                record: Some(Box::new(s.clone())),
            }));
            let parent = r
                .parent
                .and_then(|bp| ids.get(bp.run).copied().flatten().map(|p| (p, bp.step)));
            self.runs.push(RunNode {
                id,
                parent,
                request: r.request.clone(),
                tokens,
                prompt_len,
                cache_len: 0,
                captures: false,
                timings: r.timings,
                finish: r.finish,
                started: true,
                prompt_ids: if i == 0 {
                    session.prompt_tokens.clone()
                } else {
                    Vec::new()
                },
                loaded: true,
            });
        }
        if session.compare.is_empty() {
            return None;
        }
        let id = self.next_id();
        let cols: Vec<&Run> = session
            .compare
            .iter()
            .filter_map(|&i| session.runs.get(i))
            .collect();
        Some(CompareState {
            id,
            prompt: cols
                .first()
                .map(|r| r.prompt_texts.clone())
                .unwrap_or_default(),
            request: cols.first().map(|r| r.request.clone()),
            columns: cols
                .iter()
                .map(|r| CompareColumn {
                    preset: r.label.clone(),
                    settings: r.request.sampler.clone(),
                    records: r.steps.clone(),
                    text: r.text.clone(),
                    timings: r.timings,
                    finish: r.finish,
                })
                .collect(),
            ..Default::default()
        })
    }
}
