//! Debug probes for op-by-op comparison with llama.cpp (see
//! scripts/reference/FIDELITY.md). Off unless an environment variable is
//! set, and then only a lookup per op, so the forward pass is unchanged:
//!
//! - `LMSCOPE_PROBE_DUMP=dir` writes each probed intermediate as raw
//!   little-endian f32 to `dir/{name}.f32` (names as llama.cpp's graph:
//!   `attn_norm-0`, `Qcur-0`, `ffn_out-0`, `result_output`, ...), the value
//!   this engine computed;
//! - `LMSCOPE_PROBE_FORCE=dir` then replaces it with `dir/{name}.f32` when
//!   that file exists (same layout), so each op can be compared on
//!   llama.cpp's own inputs.

use std::path::PathBuf;
use std::sync::OnceLock;

struct Dirs {
    dump: Option<PathBuf>,
    force: Option<PathBuf>,
}

fn dirs() -> Option<&'static Dirs> {
    static DIRS: OnceLock<Option<Dirs>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let dump = std::env::var_os("LMSCOPE_PROBE_DUMP").map(PathBuf::from);
        let force = std::env::var_os("LMSCOPE_PROBE_FORCE").map(PathBuf::from);
        (dump.is_some() || force.is_some()).then_some(Dirs { dump, force })
    })
    .as_ref()
}

/// Whether probes are on (to skip work done only for them).
pub(crate) fn enabled() -> bool {
    dirs().is_some()
}

/// [`probe`] under `op-{layer}` (the name is only formatted when probes
/// are on).
pub(crate) fn probe_layer(op: &str, layer: usize, data: &mut [f32]) {
    if enabled() {
        probe(&format!("{op}-{layer}"), data);
    }
}

/// Dumps and/or replaces `data` under `name`.
pub(crate) fn probe(name: &str, data: &mut [f32]) {
    let Some(d) = dirs() else { return };
    if let Some(dir) = &d.dump {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::write(dir.join(format!("{name}.f32")), bytes);
    }
    if let Some(dir) = &d.force
        && let Ok(bytes) = std::fs::read(dir.join(format!("{name}.f32")))
        && bytes.len() == data.len() * 4
    {
        for (v, b) in data.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
}
