//! Fixed data for the interface tests: a model description, a short run
//! with probabilities, and synthetic attention.
#![allow(dead_code)]

use lmscope::engine::handle::{EngineEvent, LayerAttention};
use lmscope::engine::model::Precision;
use lmscope::engine::sampling::Stage;
use lmscope::engine::types::{
    AttentionRows, FinishReason, ModelInfo, PromptRecord, StepRecord, Timings, TopToken,
};
use lmscope::store::config::Config;
use lmscope::ui::app::App;
use lmscope::ui::draw as screen;
use lmscope::ui::keymap::Keymap;
use lmscope::ui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

pub fn info() -> ModelInfo {
    use lmscope::engine::types::Architecture;
    ModelInfo {
        path: "/models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        name: "SmolLM2 135M Instruct".into(),
        architecture: "llama".into(),
        file_bytes: 98_362_432,
        file_type: "Q4_1".into(),
        parameters: 134_515_008,
        n_layer: 30,
        n_head: 9,
        n_kv_head: 3,
        d_model: 576,
        d_ff: 1536,
        head_dim: 64,
        context_length: 8192,
        vocab_size: 49152,
        rope_base: 100000.0,
        rms_eps: 1e-5,
        design: Architecture {
            family: "llama".into(),
            norm: "RMSNorm, pre-norm, eps 1e-5".into(),
            activation: "SwiGLU (SiLU-gated feed-forward)".into(),
            positions: "RoPE on adjacent pairs, base 100000, 64 of 64 dims".into(),
            attention: "causal grouped-query, 9 query heads over 3 key/value heads".into(),
            tied_embeddings: true,
        },
        tensor_types: vec![("Q4_1".into(), 211)],
        bos: None,
        eos: Some((2, "<|im_end|>".into())),
        end_of_generation: vec![(2, "<|im_end|>".into())],
        add_bos: false,
        chat_template: None,
        chat_fallback: "ChatML".into(),
        layer_windows: vec![None; 30],
        precision: Precision::Quantized,
        backend: None,
    }
}

pub const PROMPT: [&str; 6] = ["The", " cat", " sat", " on", " the", " mat"];
pub const GENERATED: [(&str, f32); 8] = [
    (".", 0.62),
    (" It", 0.31),
    (" was", 0.44),
    (" a", 0.27),
    (" sunny", 0.04),
    ("\n", 0.18),
    ("The", 0.71),
    (" end", 0.09),
];

pub fn step(i: usize, text: &str, p: f32) -> StepRecord {
    let alts = [text, " and", ",", " while", " because", " but"];
    let top: Vec<TopToken> = alts
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let p_raw = if k == 0 {
                p
            } else {
                (1.0 - p) / (k as f32 + 1.5)
            };
            let removed_by = match k {
                4 => Some(Stage::MinP),
                5 => Some(Stage::TopK),
                _ => None,
            };
            TopToken {
                token_id: 100 + k as u32,
                text: t.to_string(),
                p_raw,
                p_final: if removed_by.is_some() {
                    0.0
                } else {
                    p_raw * 1.2
                },
                removed_by,
            }
        })
        .collect();
    StepRecord {
        step: i,
        position: PROMPT.len() + i,
        token_id: 100,
        text: text.into(),
        p_raw: p,
        p_final: p * 1.2,
        logprob: p.ln(),
        rank: 1 + i % 3,
        entropy: 0.4 + i as f32 * 0.35,
        top,
        attention: None,
    }
}

/// Attention for `n` positions in which every query looks mostly at the
/// first token and its own neighbour (as real heads often do).
pub fn attention(id: u64, layer: usize, n_head: usize, n: usize) -> LayerAttention {
    let mut data = vec![0.0f32; n_head * n * n];
    for h in 0..n_head {
        for q in 0..n {
            let row = &mut data[(h * n + q) * n..(h * n + q + 1) * n];
            let mut sum = 0.0;
            for (k, w) in row.iter_mut().enumerate().take(q + 1) {
                let d = (q - k) as f32;
                *w = if k == 0 { 2.0 } else { 0.1 } + (-(d - (h % 3) as f32).abs()).exp();
                sum += *w;
            }
            row.iter_mut().for_each(|w| *w /= sum);
        }
    }
    LayerAttention {
        id,
        layer,
        rows: AttentionRows {
            n_layer: 1,
            n_head,
            n_query: n,
            n_key: n,
            first_query: 0,
            data,
        },
    }
}

/// An app that has run a short generation, with attention for layer 0.
pub fn app(theme: Theme) -> App {
    let mut app = App::new(
        Config::defaults(),
        Keymap::defaults(),
        theme,
        "SmolLM2-135M-Instruct.Q4_1".into(),
    );
    app.config_path = "/home/user/.config/lmscope/config.toml".into();
    app.size = Rect::new(0, 0, 120, 36);
    app.on_engine(EngineEvent::Loaded(Box::new(info())));
    app.prompt.editor.insert_str("The cat sat on the mat");
    app.run();
    app.outbox.clear();
    let id = app.tree.newest;
    app.on_engine(EngineEvent::Prefilled {
        id,
        prompt: PromptRecord {
            token_ids: (0..6).collect(),
            texts: PROMPT.iter().map(|s| s.to_string()).collect(),
            attention: None,
        },
        cache_len: PROMPT.len(),
    });
    for (i, (text, p)) in GENERATED.iter().enumerate() {
        app.on_engine(EngineEvent::Step {
            id,
            record: Box::new(step(i, text, *p)),
            text_delta: text.to_string(),
            cache_len: PROMPT.len() + i,
        });
    }
    let timings = Timings {
        prompt_tokens: 6,
        generated: 8,
        prefill_s: 0.05,
        decode_s: 0.4,
    };
    app.on_engine(EngineEvent::Finished {
        id,
        reason: FinishReason::Length,
        timings,
    });
    let n = app.output.cache_len;
    app.on_engine(EngineEvent::Attention(attention(id, 0, 9, n)));
    app.outbox.clear();
    app.message = None;
    app
}

/// The whole interface drawn at `w` x `h`.
/// Branches the fixture run at generated token `at` with alternative
/// `alt`, as the keys do, and has the engine accept it: the new run's id.
pub fn start_branch(a: &mut App, at: usize, alt: usize) -> u64 {
    use lmscope::ui::keymap::Action;
    use lmscope::ui::state::Focus;
    a.focus = Focus::Output;
    a.update(Action::FirstToken);
    for _ in 0..PROMPT.len() + at {
        a.update(Action::TokenNext);
    }
    a.focus = Focus::Probabilities;
    for _ in 0..alt {
        a.update(Action::AltNext);
    }
    a.update(Action::Branch);
    let id = a.tree.newest;
    a.on_engine(EngineEvent::Branched {
        id,
        parent_id: 1,
        step: at,
        cache_len: PROMPT.len() + at - 1,
    });
    id
}

pub fn draw(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    app.size = Rect::new(0, 0, w, h);
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    term.draw(|f| {
        let area = f.area();
        screen::draw(app, area, f.buffer_mut());
    })
    .expect("draw");
    term
}

/// A token of a compare column: `id` and its probability, with the
/// alternatives `others` (id, text, p) as the column saw them.
pub fn compare_step(
    i: usize,
    id: u32,
    text: &str,
    p: f32,
    others: &[(u32, &str, f32)],
) -> StepRecord {
    let mut r = step(i, text, p);
    r.token_id = id;
    r.top.truncate(1);
    r.top[0].token_id = id;
    for &(oid, otext, op) in others {
        r.top.push(TopToken {
            token_id: oid,
            text: otext.into(),
            p_raw: op,
            p_final: op,
            removed_by: None,
        });
    }
    r
}

/// The fixture app after a finished comparison of greedy, balanced and
/// creative: the columns agree on " The cat", part at step 2 (greedy and
/// balanced " sat", creative " purred"), and creative ends early (eos).
pub fn compare_app(theme: Theme) -> App {
    let mut app = app(theme);
    app.prompt.editor.insert_str("Tell me about the cat");
    app.update(lmscope::ui::keymap::Action::Compare);
    app.outbox.clear();
    let id = app.tree.newest;
    let shared = [(1u32, " The", 0.62f32), (2, " cat", 0.48)];
    let tails: [&[(u32, &str, f32)]; 3] = [
        &[
            (3, " sat", 0.41),
            (5, " on", 0.77),
            (6, " the", 0.83),
            (7, " mat", 0.35),
            (8, ".", 0.6),
        ],
        &[
            (3, " sat", 0.41),
            (5, " on", 0.77),
            (6, " the", 0.83),
            (9, " sofa", 0.12),
        ],
        &[(4, " purred", 0.065), (10, "\n", 0.2)],
    ];
    for (column, tail) in tails.iter().enumerate() {
        let mut records = Vec::new();
        for (i, (tid, text, p)) in shared.iter().enumerate() {
            records.push(compare_step(i, *tid, text, *p, &[(90, " A", 0.1)]));
        }
        for (k, (tid, text, p)) in tail.iter().enumerate() {
            let others: Vec<(u32, &str, f32)> = if k == 0 {
                // Step 2: each column also saw the other choice.
                if *tid == 3 {
                    vec![(4, " purred", 0.065)]
                } else {
                    vec![(3, " sat", 0.16)]
                }
            } else {
                vec![(91, " and", 0.05)]
            };
            records.push(compare_step(2 + k, *tid, text, *p, &others));
        }
        for record in records {
            let text_delta = record.text.clone();
            app.on_engine(EngineEvent::CompareStep {
                id,
                column,
                record: Box::new(record),
                text_delta,
            });
        }
    }
    for (column, (reason, n)) in [
        (FinishReason::Length, 7),
        (FinishReason::Length, 6),
        (FinishReason::Eos, 4),
    ]
    .into_iter()
    .enumerate()
    {
        app.on_engine(EngineEvent::CompareFinished {
            id,
            column,
            reason,
            timings: Timings {
                prompt_tokens: 6,
                generated: n,
                prefill_s: 0.05,
                decode_s: 0.5,
            },
        });
    }
    app.message = None;
    app
}
