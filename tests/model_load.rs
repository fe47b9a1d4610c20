//! A corrupt model is refused at load with a line that names what is wrong,
//! never a panic or an abort: each case patches a copy of the real model.

mod common;

use std::path::{Path, PathBuf};

use lmscope::engine::Engine;
use lmscope::engine::model::Precision;

/// Where the fields a test patches lie in the real model's header.
struct Layout {
    /// Value offset of each metadata key.
    values: Vec<(String, usize)>,
    /// For each tensor: name, offset of its first dimension, its rank, and
    /// the offset of its data offset.
    tensors: Vec<(String, usize, usize, usize)>,
}

fn layout(b: &[u8]) -> Layout {
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let string = |o: usize| -> (String, usize) {
        let n = u64_at(o);
        (
            String::from_utf8_lossy(&b[o + 8..o + 8 + n]).into(),
            o + 8 + n,
        )
    };
    fn skip(b: &[u8], t: usize, o: usize) -> usize {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
        match t {
            0 | 1 | 7 => o + 1,
            2 | 3 => o + 2,
            4..=6 => o + 4,
            10..=12 => o + 8,
            8 => o + 8 + u64_at(o),
            9 => {
                let inner = u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
                let n = u64_at(o + 4);
                (0..n).fold(o + 12, |o, _| skip(b, inner, o))
            }
            _ => panic!("value type {t}"),
        }
    }
    let (n_tensors, n_kv) = (u64_at(8), u64_at(16));
    let mut o = 24;
    let mut values = Vec::new();
    for _ in 0..n_kv {
        let (key, after) = string(o);
        let t = u32_at(after);
        values.push((key, after + 4));
        o = skip(b, t, after + 4);
    }
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let (name, after) = string(o);
        let rank = u32_at(after);
        let dims = after + 4;
        tensors.push((name, dims, rank, dims + 8 * rank + 4));
        o = dims + 8 * rank + 4 + 8;
    }
    Layout { values, tensors }
}

/// A copy of the real model with `patch` applied to its bytes.
fn patched(name: &str, patch: impl FnOnce(&mut Vec<u8>, &Layout)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{name}.gguf"));
    let mut bytes = std::fs::read(common::model_path()).unwrap();
    let l = layout(&bytes);
    patch(&mut bytes, &l);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn value_at(l: &Layout, key: &str) -> usize {
    l.values.iter().find(|(k, _)| k == key).unwrap().1
}

fn tensor<'a>(l: &'a Layout, name: &str) -> &'a (String, usize, usize, usize) {
    l.tensors.iter().find(|t| t.0 == name).unwrap()
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Loading fails with a message containing `expect`, and `info` on the
/// command line says so in one line with a non-zero exit.
fn refused(path: &Path, expect: &str) {
    let err = match Engine::load(path, Precision::Quantized) {
        Ok(_) => panic!("{}: loaded", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(expect), "{err}");
    assert!(err.contains("corrupt"), "says the file is corrupt: {err}");
    let out = common::lmscope(&["info", "--model", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_dimension_of_two_to_the_62_is_refused() {
    let (_d, path) = patched("huge-dim", |b, l| {
        let at = tensor(l, "token_embd.weight").1;
        put_u64(b, at, 1 << 62);
    });
    refused(&path, "has a dimension of 4611686018427387904");
}

#[test]
fn a_weight_whose_shape_disagrees_with_the_config_is_refused() {
    let (_d, path) = patched("swapped", |b, l| {
        let &(_, at, rank, _) = tensor(l, "blk.3.ffn_gate.weight");
        assert_eq!(rank, 2);
        let (a, c) = (b[at..at + 8].to_vec(), b[at + 8..at + 16].to_vec());
        b[at..at + 8].copy_from_slice(&c);
        b[at + 8..at + 16].copy_from_slice(&a);
    });
    refused(
        &path,
        "tensor `blk.3.ffn_gate.weight` has shape [576, 1536], but the model's settings make it [1536, 576]",
    );
}

#[test]
fn a_tensor_past_the_end_of_the_file_is_refused() {
    let (_d, path) = patched("offset", |b, l| {
        let at = tensor(l, "blk.7.attn_v.weight").3;
        put_u64(b, at, 1 << 40);
    });
    refused(&path, "tensor `blk.7.attn_v.weight` ends at byte");
}

#[test]
fn a_special_token_id_outside_the_vocabulary_is_refused() {
    let (_d, path) = patched("bos", |b, l| {
        put_u32(b, value_at(l, "tokenizer.ggml.bos_token_id"), 0xffff_fff0);
    });
    refused(
        &path,
        "`tokenizer.ggml.bos_token_id` is 4294967280 but the vocabulary has 49152 tokens",
    );
}

#[test]
fn a_string_longer_than_the_file_is_refused_without_allocating_it() {
    let (_d, path) = patched("string", |b, l| {
        // The length of the chat template string.
        put_u64(b, value_at(l, "tokenizer.chat_template"), u64::MAX / 2);
    });
    refused(
        &path,
        "runs 9223372036854775807 bytes past the end of the file",
    );
}

#[test]
fn a_layer_count_beyond_reason_is_refused() {
    let (_d, path) = patched("layers", |b, l| {
        put_u32(b, value_at(l, "llama.block_count"), 1 << 30);
    });
    refused(&path, "`block_count` is 1073741824 (1 to 1024)");
}

#[test]
fn a_truncated_file_is_refused() {
    let (_d, path) = patched("truncated", |b, _| b.truncate(b.len() / 2));
    refused(&path, "ends at byte");
}
