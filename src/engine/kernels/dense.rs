//! The f32 pieces of the encoders, on our pool: dense layers y = x Wᵀ + b
//! with the output columns split across the threads, each block one
//! single-threaded call of the `gemm` crate (candle's own f32 kernel);
//! full bidirectional attention, a head per task; the exact GELU. Handing a
//! sentence's few rows to gemm's rayon parallelism costs more than it
//! saves, and its threads then compete with ours.

use super::pool::pool;

/// A pointer to an output that tasks write in disjoint places.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: shared between the pool's tasks, each of which writes elements
// no other task writes, and `Pool::run` returns only after every task is
// done (the callers below say which elements each task owns).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Taken through a method so that closures capture the whole (`Sync`)
    /// wrapper rather than its raw pointer field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Columns per task: a multiple of gemm's register tile, and enough work
/// per task to outweigh handing it out.
const COLUMNS_PER_TASK: usize = 64;

/// `out` (m x n, row-major) = `x` (m x k) · `w`ᵀ (`w` is n x k, row-major,
/// as checkpoints store it) + `bias` (n).
pub fn linear_f32(x: &[f32], m: usize, w: &[f32], n: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let k = x.len().checked_div(m).unwrap_or(0);
    assert_eq!(x.len(), m * k, "x is not m x k");
    assert_eq!(w.len(), n * k, "w is not n x k");
    assert_eq!(out.len(), m * n, "out is not m x n");
    if m == 0 || n == 0 {
        return;
    }
    let tasks = n
        .div_ceil(COLUMNS_PER_TASK)
        .min(pool().threads() * 4)
        .max(1);
    let per = n.div_ceil(tasks).next_multiple_of(16).min(n);
    let tasks = n.div_ceil(per);
    let dst = OutPtr(out.as_mut_ptr());
    pool().run(tasks, &|t| {
        let p = dst.get();
        let c0 = t * per;
        let cols = per.min(n - c0);
        // SAFETY: task t writes only columns c0..c0 + cols of `out` (rows
        // m, stride n), which no other task writes; `out` is exclusively
        // borrowed for the call and `run` returns when every task is done.
        // The reads stay inside `x` (m x k) and rows c0..c0 + cols of `w`.
        unsafe {
            gemm::gemm(
                m,
                cols,
                k,
                p.add(c0),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr().add(c0 * k),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(n) {
            for (y, b) in row.iter_mut().zip(b) {
                *y += b;
            }
        }
    }
}

/// The exact GELU, x Φ(x) = x (1 + erf(x / √2)) / 2, in place.
pub fn gelu_erf(x: &mut [f32]) {
    const CHUNK: usize = 4096;
    let len = x.len();
    let base = OutPtr(x.as_mut_ptr());
    pool().run(len.div_ceil(CHUNK), &|i| {
        let start = i * CHUNK;
        let end = (start + CHUNK).min(len);
        // SAFETY: task i owns x[start..end], inside `x` (exclusively
        // borrowed for the call); tasks' ranges do not overlap.
        let chunk = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        for v in chunk {
            *v = 0.5 * *v * (1.0 + libm::erff(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
}

/// Every query over every key (no mask), per head: `[q, k, v]` and `ctx`
/// are (n, heads x head_dim) rows; `probs`, when given, receives each
/// head's (n, n) probabilities, heads one after another.
pub fn attend_full_f32(
    [q, k, v]: [&[f32]; 3],
    n: usize,
    heads: usize,
    head_dim: usize,
    ctx: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let d = heads * head_dim;
    assert!(q.len() == n * d && k.len() == n * d && v.len() == n * d && ctx.len() == n * d);
    if let Some(p) = probs.as_deref() {
        assert_eq!(p.len(), heads * n * n);
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    let out = OutPtr(ctx.as_mut_ptr());
    let kept = probs.map(|p| OutPtr(p.as_mut_ptr()));
    pool().run(heads, &|h| {
        let c = out.get();
        let off = h * head_dim;
        let mut row = vec![0f32; n];
        for i in 0..n {
            let qi = &q[i * d + off..i * d + off + head_dim];
            for (j, s) in row.iter_mut().enumerate() {
                let kj = &k[j * d + off..j * d + off + head_dim];
                *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            row.iter_mut().for_each(|s| *s /= sum);
            // SAFETY: task h writes only its head's columns off..off +
            // head_dim of `ctx` and its own (n, n) block of `probs`; both
            // are exclusively borrowed for the call and `run` returns when
            // every task is done.
            let ci = unsafe { std::slice::from_raw_parts_mut(c.add(i * d + off), head_dim) };
            ci.fill(0.0);
            for (j, &p) in row.iter().enumerate() {
                let vj = &v[j * d + off..j * d + off + head_dim];
                for (o, x) in ci.iter_mut().zip(vj) {
                    *o += p * x;
                }
            }
            if let Some(kp) = kept {
                let pp = kp.get();
                // SAFETY: as above; row i of head h's block.
                let dst = unsafe { std::slice::from_raw_parts_mut(pp.add((h * n + i) * n), n) };
                dst.copy_from_slice(&row);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::linear_f32;

    #[test]
    fn matches_the_plain_product() {
        let (m, k, n) = (5, 37, 150);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5) % 11) as f32 * 0.1 - 0.5)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let mut out = vec![0f32; m * n];
        linear_f32(&x, m, &w, n, Some(&b), &mut out);
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|c| x[i * k + c] * w[j * k + c]).sum::<f32>() + b[j];
                assert!((out[i * n + j] - want).abs() < 1e-3, "{i},{j}");
            }
        }
    }
}
