//! Compares our kernels with candle's `QMatMul` on the real model's weights
//! (random activations): `cargo run --release --example kernel_check -- MODEL.gguf`.
use candle_core::quantized::{GgmlDType, QMatMul, gguf_file};
use candle_core::{Device, Module, Tensor};
use lmscope::engine::kernels::{self, QWeight, WeightKind};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("a GGUF path");
    let mut f = std::fs::File::open(&path)?;
    let content = gguf_file::Content::read(&mut f)?;
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.ffn_down.weight",
        "blk.5.ffn_gate.weight",
        "token_embd.weight",
    ] {
        let q = content.tensor(&mut f, name, &Device::Cpu)?;
        let kind = match q.dtype() {
            GgmlDType::Q4_1 => WeightKind::Q4_1,
            GgmlDType::Q8_0 => WeightKind::Q8_0,
            t => anyhow::bail!("{name}: {t:?}"),
        };
        let (rows, cols) = q.shape().dims2()?;
        let w =
            QWeight::new(kind, rows, cols, q.data()?.into_owned()).map_err(anyhow::Error::msg)?;
        let x = Tensor::randn(0f32, 1.0, (3, cols), &Device::Cpu)?;
        let xv = x.flatten_all()?.to_vec1::<f32>()?;
        let mut ours = vec![0f32; 3 * rows];
        kernels::matmul(&[&w], &xv, 3, &mut [&mut ours]);
        let deq = q.dequantize(&Device::Cpu)?;
        let exact = x.matmul(&deq.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        let candle = QMatMul::from_qtensor(q)?
            .forward(&x)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        for m in [1usize, 4, 64] {
            let xs: Vec<f32> = (0..m * cols)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let mut out = vec![0f32; m * rows];
            let reps = 10;
            let cpu0 = cpu_time();
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                kernels::matmul(&[&w], &xs, m, &mut [&mut out]);
            }
            let wall = t0.elapsed().as_secs_f64() / reps as f64;
            let cpu = (cpu_time() - cpu0) / reps as f64;
            println!(
                "  m={m:3}: {:.3} ms wall, {:.3} ms cpu, {:.1} GB/s of weights per wall second",
                wall * 1e3,
                cpu * 1e3,
                w.size_bytes() as f64 / wall / 1e9
            );
        }
        let diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        let mean_signed = |a: &[f32], b: &[f32]| {
            a.iter().zip(b).map(|(x, y)| x - y).sum::<f32>() / a.len() as f32
        };
        println!(
            "{name:24} {kind:?} {rows}x{cols}: max|ours-f32| {:.4} mean(ours-f32) {:+.5} max|candle-f32| {:.4} mean(candle-f32) {:+.5}",
            diff(&ours, &exact),
            mean_signed(&ours, &exact),
            diff(&candle, &exact),
            mean_signed(&candle, &exact)
        );
    }
    Ok(())
}

/// CPU time of this process (user + system), seconds.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}
