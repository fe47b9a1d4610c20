//! Fuzz targets: each takes arbitrary bytes and feeds them to one of
//! lmscope's readers of outside input. A target may return errors freely;
//! it must never panic, abort or hang. Shared by the fuzzer
//! (`examples/fuzz.rs`, run by `scripts/fuzz.sh`) and the regression test
//! (`tests/fuzz_regressions.rs`, which replays every input kept under
//! `tests/fuzz/<target>/`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::rngs::StdRng;

use lmscope::analysis::bias::pairs;
use lmscope::engine::load::gguf::GgufFile;
use lmscope::engine::load::weights::Weights;
use lmscope::engine::tokenizer::Tokenizer;
use lmscope::store::config;
use lmscope::store::session::{self, Session};
use lmscope::ui::keymap::Keymap;

pub struct Target {
    pub name: &'static str,
    pub run: fn(&Scratch, &[u8]),
}

pub const TARGETS: &[Target] = &[
    Target {
        name: "gguf",
        run: gguf,
    },
    Target {
        name: "session",
        run: session_files,
    },
    Target {
        name: "config",
        run: config_file,
    },
    Target {
        name: "keymap",
        run: keymap,
    },
    Target {
        name: "crows",
        run: crows_csv,
    },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A private folder for the files a target reads back (the readers take
/// paths), removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// The size the fuzzed GGUF prefix is padded to (with zeros, sparsely), so
/// that the tensor table of a real model's first megabytes points inside
/// the file and the readers go on past the range check.
pub const GGUF_PADDED_LEN: u64 = 160 << 20;

/// The GGUF header and tensor table, then the tokenizer built from them.
fn gguf(scratch: &Scratch, data: &[u8]) {
    let path = scratch.path("model.gguf");
    std::fs::write(&path, data).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(GGUF_PADDED_LEN.max(data.len() as u64))
        .unwrap();
    let Ok(gguf) = GgufFile::open(&path) else {
        return;
    };
    let _ = gguf.architecture();
    let _ = gguf.check_tensor_types();
    let _ = gguf.tensor_type_counts();
    for key in [
        "general.name",
        "tokenizer.chat_template",
        "tokenizer.ggml.model",
    ] {
        let _ = gguf.meta_str(key);
    }
    let _ = gguf.meta_usize("llama.context_length");
    let _ = gguf.meta_f32("llama.rope.freq_base");
    let names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
    for name in &names {
        let _ = gguf.tensor_shape(name);
    }
    if let Ok(tok) = Tokenizer::load(&gguf) {
        if let Ok(ids) = tok.encode("Hello, world! <|im_start|>", true) {
            let _ = tok.decode(&ids);
            for id in ids {
                let _ = tok.token_text(id);
            }
        }
        for id in [tok.bos, tok.eos].into_iter().flatten() {
            let _ = tok.token_text(id);
        }
    }
}

/// A session file and its attention sidecar: the input is
/// `json length (u32 LE) | json | sidecar`.
fn session_files(scratch: &Scratch, data: &[u8]) {
    let (json, sidecar) = split_session(data);
    let path = scratch.path("fuzz.json");
    std::fs::write(&path, json).unwrap();
    let side = session::sidecar_path(&path);
    match sidecar {
        Some(bytes) => std::fs::write(&side, bytes).unwrap(),
        None => {
            let _ = std::fs::remove_file(&side);
        }
    }
    let _ = session::list(path.parent().unwrap());
    if let Ok(s) = Session::load(&path) {
        for run in &s.runs {
            let _ = session::export_markdown(&s, run);
            let _ = session::export_csv(run);
        }
    }
}

/// Splits a session fuzz input; a length past the end takes all as JSON.
pub fn split_session(data: &[u8]) -> (&[u8], Option<&[u8]>) {
    if data.len() < 4 {
        return (data, None);
    }
    let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
    let rest = &data[4..];
    if n >= rest.len() {
        (rest, None)
    } else {
        (&rest[..n], Some(&rest[n..]))
    }
}

pub fn join_session(json: &[u8], sidecar: Option<&[u8]>) -> Vec<u8> {
    let n = if sidecar.is_some() {
        json.len() as u32
    } else {
        u32::MAX
    };
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(json);
    out.extend_from_slice(sidecar.unwrap_or_default());
    out
}

/// The settings file, read over the defaults.
fn config_file(_: &Scratch, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let loaded = config::parse(Some(&text), Path::new("config.toml"));
    let _ = loaded.config.sampler.validate();
}

/// The `[keys]` table of the settings file, applied to the default keymap.
fn keymap(_: &Scratch, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let loaded = config::parse(Some(&text), Path::new("config.toml"));
    let _ = Keymap::load(&loaded.config.keys);
}

/// A CrowS-Pairs-format CSV.
fn crows_csv(_: &Scratch, data: &[u8]) {
    let _ = pairs::read_pairs(data);
}

/// The real model's header and tensor table: the bytes before its first
/// tensor's data.
pub fn real_gguf_header() -> Vec<u8> {
    let path = real_model();
    let gguf = GgufFile::open(&path).expect("the real model opens");
    let mut bytes = std::fs::read(&path).expect("the real model reads");
    bytes.truncate(gguf.content.tensor_data_offset as usize);
    bytes
}

fn real_model() -> PathBuf {
    lmscope::store::models::resolve(None).expect("the default model can be fetched")
}

/// Session inputs written by the real model: a text run with attention
/// captured (so with a sidecar) and a chat run without.
pub fn real_sessions() -> Vec<Vec<u8>> {
    use lmscope::engine::chat::Message;
    use lmscope::engine::model::Precision;
    use lmscope::engine::{Engine, Prompt, Request};
    use lmscope::store::session::Run;

    let engine = Engine::load(&real_model(), Precision::Quantized).expect("the real model loads");
    let identity = Session::identify(engine.info()).expect("the model file hashes");
    let scratch = Scratch::new();
    let prompts = [
        (Prompt::Text("The lighthouse".into()), true),
        (
            Prompt::Chat(vec![Message {
                role: "user".into(),
                content: "Hi".into(),
            }]),
            false,
        ),
    ];
    let mut out = Vec::new();
    for (i, (prompt, capture)) in prompts.into_iter().enumerate() {
        let request = Request {
            max_tokens: 3,
            top_n: 4,
            capture_attention: capture,
            ..Request::new(prompt.clone())
        };
        let mut g = engine.start(&request).expect("a run starts");
        while g.step(&engine).expect("a step").is_some() {}
        let mut session = Session::new(identity.clone(), prompt, g.prompt_tokens().to_vec(), None);
        session
            .runs
            .push(Run::from_generation("seed", &request, &g));
        let path = scratch.path(&format!("seed{i}.json"));
        session.save(&path).expect("the seed session saves");
        let json = std::fs::read(&path).unwrap();
        let sidecar = std::fs::read(session::sidecar_path(&path)).ok();
        out.push(join_session(&json, sidecar.as_deref()));
    }
    out
}

/// The folder of kept inputs for `target` (seeds and crashes found).
pub fn kept_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target)
}

/// The kept inputs for `target`, plus seeds made from real files.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(kept_dir(target))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match target {
        // The real model's header and tensor table (no weights: the target
        // pads the file with zeros).
        "gguf" => out.push(real_gguf_header()),
        "session" => out.extend(real_sessions()),
        "crows" => out.extend(std::fs::read(
            root.join("tests/fixtures/bias_parity_pairs.csv"),
        )),
        _ => {}
    }
    out
}

/// Words the mutator splices in: the syntax each reader cares about.
pub fn dictionary(target: &str) -> Vec<&'static [u8]> {
    let common: &[&[u8]] = &[b"\n", b"\"", b"\\", b"\0", b"\xff\xfe", b"\xe2\x82", b"-1"];
    let own: &[&[u8]] = match target {
        "config" | "keymap" => &[
            b"[keys]",
            b"[keys.global]",
            b"[keys.output]",
            b"[sampler]",
            b"[generation]",
            b"[ui]",
            b"[compare]",
            b" = ",
            b"[[",
            b"]]",
            b"{ a = 1 }",
            b"\"ctrl-c\"",
            b"\"alt-shift-enter\"",
            b"\"f13\"",
            b"[\"q\", \"q\"]",
            b"temperature",
            b"top_k",
            b"1e309",
            b"nan",
            b"-inf",
            b"9223372036854775807",
            b"true",
        ],
        "crows" => &[
            b",",
            b"\"\"",
            b"\r\n",
            b"sent_more",
            b"sent_less",
            b"stereo_antistereo",
            b"bias_type",
            b"antistereo",
            b"race-color",
        ],
        "session" => &[
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"null",
            b"1e999",
            b"-1",
            b"4294967296",
            b"1000000000",
            b"\"steps\"",
            b"\"runs\"",
            b"\"version\"",
            b"\"attention\"",
            b"LMSA",
        ],
        _ => &[],
    };
    common.iter().chain(own).copied().collect()
}

const U32S: &[u32] = &[
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX,
];
const U64S: &[u64] = &[
    0,
    1,
    u32::MAX as u64 + 1,
    1 << 40,
    1 << 61,
    1 << 62,
    i64::MAX as u64,
    u64::MAX,
];

pub fn mutate(rng: &mut StdRng, data: &mut Vec<u8>, dict: &[&[u8]], corpus: &[Vec<u8>]) {
    if data.is_empty() {
        data.push(rng.random());
        return;
    }
    let at = rng.random_range(0..data.len());
    match rng.random_range(0..10) {
        0 => data[at] ^= 1 << rng.random_range(0..8),
        1 => data[at] = [0, 1, 0x7f, 0x80, 0xff][rng.random_range(0..5)],
        2 => {
            let v = U32S[rng.random_range(0..U32S.len())].to_le_bytes();
            overwrite(data, at, &v);
        }
        3 => {
            let v = U64S[rng.random_range(0..U64S.len())].to_le_bytes();
            overwrite(data, at, &v);
        }
        4 => {
            let end = (at + rng.random_range(1..=64)).min(data.len());
            data.drain(at..end);
        }
        5 => {
            let n = rng.random_range(1..=16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            data.splice(at..at, bytes);
        }
        6 => {
            let end = (at + rng.random_range(1..=256)).min(data.len());
            let span = data[at..end].to_vec();
            let to = rng.random_range(0..=data.len());
            data.splice(to..to, span);
        }
        7 => data.truncate(at),
        8 if !dict.is_empty() => {
            let word = dict[rng.random_range(0..dict.len())];
            data.splice(at..at, word.iter().copied());
        }
        _ => {
            // Splice: this input's head, another's tail.
            let other = &corpus[rng.random_range(0..corpus.len())];
            if !other.is_empty() {
                let from = rng.random_range(0..other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
}

fn overwrite(data: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(data.len());
    data[at..end].copy_from_slice(&bytes[..end - at]);
}
