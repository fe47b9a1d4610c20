//! One forward pass over given token ids (all logits), for the debug probes
//! (`LMSCOPE_PROBE_DUMP` / `LMSCOPE_PROBE_FORCE`, see
//! scripts/reference/FIDELITY.md):
//! `cargo run --example probe_forward -- MODEL.gguf 504,3575,282 [f32]`.
use lmscope::engine::load::gguf::GgufFile;
use lmscope::engine::model::{Llama, Logits, Precision};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("a GGUF path");
    let ids: Vec<u32> = args
        .next()
        .expect("comma-separated token ids")
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let precision = match args.next().as_deref() {
        Some("f32") => Precision::F32,
        _ => Precision::Quantized,
    };
    let mut gguf = GgufFile::open(std::path::Path::new(&path))?;
    let model = Llama::load(&mut gguf, precision)?;
    let mut cache = model.new_cache(false);
    let logits = model.forward(&ids, &mut cache, Logits::All)?;
    eprintln!("logits {:?}", logits.dims());
    Ok(())
}
