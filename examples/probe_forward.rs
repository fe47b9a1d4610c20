//! One forward pass over given token ids (all logits), for the debug probes
//! (`LMSCOPE_PROBE_DUMP` / `LMSCOPE_PROBE_FORCE`, see
//! scripts/reference/FIDELITY.md):
//! `cargo run --example probe_forward -- MODEL.gguf 504,3575,282 [--decode ID] [f32]`;
//! with `--decode`, a one-token step follows the prompt and the probes hold
//! that step (each probe file is overwritten by the last pass).
use lmscope::engine::load::gguf::GgufFile;
use lmscope::engine::model::{self, Logits, Precision};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a GGUF path");
    let ids: Vec<u32> = args
        .next()
        .expect("comma-separated token ids")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let rest: Vec<String> = args.collect();
    let decode: Option<u32> = match rest.iter().position(|a| a == "--decode") {
        Some(i) => Some(rest.get(i + 1).expect("--decode ID").parse()?),
        None => None,
    };
    let precision = if rest.iter().any(|a| a == "f32") {
        Precision::F32
    } else {
        Precision::Quantized
    };
    let mut gguf = GgufFile::open(std::path::Path::new(&path))?;
    let model = model::load(&mut gguf, precision)?;
    let mut cache = model.new_cache(false);
    let logits = model.forward(&ids, &mut cache, Logits::All)?;
    eprintln!("prompt logits {:?}", logits.dims());
    if let Some(id) = decode {
        let logits = model.forward(&[id], &mut cache, Logits::All)?;
        eprintln!("step logits {:?}", logits.dims());
    }
    Ok(())
}
