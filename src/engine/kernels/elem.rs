//! The element types the KV cache holds its rows in, and the two products
//! attention needs over them: f32, and f16 (what llama.cpp's default cache
//! holds; half the memory, and exact in quantised mode, where queries, keys
//! and values are rounded to f16 before they are cached).
//!
//! Both types and both instruction sets compute the same sums in the same
//! order (eight lanes, each a multiply then an add, lanes summed first to
//! last, then the tail), so a value gives the same result whichever way it
//! is stored.

use half::f16;

use super::{Isa, isa};

/// A type the KV cache stores rows in.
pub trait CacheElem: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// Σ q_i k_i (`q` and `k` of equal length).
    fn dot(q: &[f32], k: &[Self]) -> f32;
    /// y += a x (`y` and `x` of equal length).
    fn axpy(y: &mut [f32], a: f32, x: &[Self]);

    /// out_j = q . (row j of `rows`), rows `stride` apart: one head's
    /// scores over its keys.
    fn dots(q: &[f32], rows: &[Self], stride: usize, out: &mut [f32]) {
        let d = q.len();
        for (j, o) in out.iter_mut().enumerate() {
            *o = Self::dot(q, &rows[j * stride..j * stride + d]);
        }
    }

    /// y += sum_j p_j (row j of `rows`), rows `stride` apart, j in order
    /// (each element sees the same operations as one `axpy` per row): one
    /// head's output from its values.
    fn weighted_sum(p: &[f32], rows: &[Self], stride: usize, y: &mut [f32]) {
        let d = y.len();
        for (j, &pj) in p.iter().enumerate() {
            Self::axpy(y, pj, &rows[j * stride..j * stride + d]);
        }
    }
}

/// Checks that `n` rows of `d`, `stride` apart, lie inside `len` elements.
fn check_rows(n: usize, d: usize, stride: usize, len: usize) {
    assert!(n == 0 || (n - 1) * stride + d <= len, "rows out of bounds");
}

/// The lane-wise sum shared by every type: eight running sums, a multiply
/// then an add each (never fused), summed in order, then the tail.
#[inline]
fn dot_lanes<T: Copy>(q: &[f32], k: &[T], f: impl Fn(T) -> f32) -> f32 {
    debug_assert_eq!(q.len(), k.len());
    let mut acc = [0f32; 8];
    let (qc, kc) = (q.chunks_exact(8), k.chunks_exact(8));
    let tail: f32 = qc
        .remainder()
        .iter()
        .zip(kc.remainder())
        .map(|(&x, &y)| x * f(y))
        .sum();
    for (x, y) in qc.zip(kc) {
        for l in 0..8 {
            acc[l] += x[l] * f(y[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl CacheElem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }

    fn to_f32(self) -> f32 {
        self
    }

    fn dot(q: &[f32], k: &[f32]) -> f32 {
        dot_lanes(q, k, |y| y)
    }

    fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }
}

impl CacheElem for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    // `isa()` is only ever a set of instructions this CPU has.
    fn dot(q: &[f32], k: &[f16]) -> f32 {
        dot_f16(isa(), q, k)
    }

    fn axpy(y: &mut [f32], a: f32, x: &[f16]) {
        axpy_f16(isa(), y, a, x)
    }

    fn dots(q: &[f32], rows: &[f16], stride: usize, out: &mut [f32]) {
        check_rows(out.len(), q.len(), stride, rows.len());
        match isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx2Vnni => {
                // SAFETY: the features were detected (`isa()`), and every
                // row read lies inside `rows` (checked above).
                unsafe { x86::dots_f16(q, rows, stride, out) }
            }
            _ => {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = dot_lanes(q, &rows[j * stride..j * stride + q.len()], f16::to_f32);
                }
            }
        }
    }

    fn weighted_sum(p: &[f32], rows: &[f16], stride: usize, y: &mut [f32]) {
        check_rows(p.len(), y.len(), stride, rows.len());
        match isa() {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::Avx2Vnni => {
                // SAFETY: as in `dots`.
                unsafe { x86::weighted_sum_f16(p, rows, stride, y) }
            }
            _ => {
                for (j, &pj) in p.iter().enumerate() {
                    axpy_f16(Isa::Scalar, y, pj, &rows[j * stride..j * stride + y.len()]);
                }
            }
        }
    }
}

/// [`CacheElem::dot`] for f16 keys with `isa`'s instructions (checked
/// against the CPU: for tests; the cache's calls use [`isa`]).
pub fn dot_f16_with(isa: Isa, q: &[f32], k: &[f16]) -> f32 {
    assert!(isa.supported(), "{isa:?} kernels on a CPU without them");
    dot_f16(isa, q, k)
}

/// [`CacheElem::axpy`] for f16 `x` with `isa`'s instructions (checked
/// against the CPU, as [`dot_f16_with`]).
pub fn axpy_f16_with(isa: Isa, y: &mut [f32], a: f32, x: &[f16]) {
    assert!(isa.supported(), "{isa:?} kernels on a CPU without them");
    axpy_f16(isa, y, a, x)
}

/// `isa` must be supported (the callers above check or know it).
fn dot_f16(isa: Isa, q: &[f32], k: &[f16]) -> f32 {
    assert_eq!(q.len(), k.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx2Vnni => {
            // SAFETY: AVX2, FMA and F16C are there (`Isa::Avx2` is only
            // detected or accepted after run-time checks of all three) and
            // both slices hold `q.len()` elements.
            unsafe { x86::dot_f16(q, k) }
        }
        _ => dot_lanes(q, k, f16::to_f32),
    }
}

/// `isa` must be supported, as for [`dot_f16`].
fn axpy_f16(isa: Isa, y: &mut [f32], a: f32, x: &[f16]) {
    assert_eq!(y.len(), x.len());
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx2Vnni => {
            // SAFETY: as in `dot_f16`: the features were checked, and
            // both slices hold `y.len()` elements.
            unsafe { x86::axpy_f16(y, a, x) }
        }
        _ => {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += a * x.to_f32();
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Eight f16 at `p` as f32.
    ///
    /// # Safety
    /// F16C is available and `p` points to eight readable f16.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> __m256 {
        // SAFETY: the caller guarantees eight f16 behind `p`.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p as *const __m128i) })
    }

    /// [`super::CacheElem::dot`] for f16 keys, with the lanes of
    /// `dot_lanes`.
    ///
    /// # Safety
    /// AVX2 and F16C are available and `k.len() == q.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16(q: &[f32], k: &[f16]) -> f32 {
        let n8 = q.len() / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= n8 <= len of both slices.
            let (x, y) = unsafe { (_mm256_loadu_ps(q.as_ptr().add(i)), load8(k.as_ptr().add(i))) };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(x, y));
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds eight floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let tail: f32 = q[n8..]
            .iter()
            .zip(&k[n8..])
            .map(|(&x, &y)| x * y.to_f32())
            .sum();
        lanes.iter().sum::<f32>() + tail
    }

    /// `dot_f16` of `q` with each of `out.len()` rows `stride` apart, in
    /// one call (no call or dispatch per key).
    ///
    /// # Safety
    /// AVX2 and F16C are available and the rows lie inside `rows`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dots_f16(q: &[f32], rows: &[f16], stride: usize, out: &mut [f32]) {
        let d = q.len();
        for (j, o) in out.iter_mut().enumerate() {
            // SAFETY: the caller checked that row j lies inside `rows`.
            let row = unsafe { std::slice::from_raw_parts(rows.as_ptr().add(j * stride), d) };
            // SAFETY: the features are there; both slices hold d.
            *o = unsafe { dot_f16(q, row) };
        }
    }

    /// y += sum_j p_j row_j for f16 rows `stride` apart: each 8-wide chunk
    /// of y stays in a register over all rows, with the element-wise
    /// operations of successive `axpy_f16` calls.
    ///
    /// # Safety
    /// AVX2 and F16C are available and the rows lie inside `rows`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum_f16(p: &[f32], rows: &[f16], stride: usize, y: &mut [f32]) {
        let d = y.len();
        let n8 = d / 8 * 8;
        for c in (0..n8).step_by(8) {
            // SAFETY: c + 8 <= d = y.len(), and row j's elements c..c + 8
            // lie inside `rows` (checked by the caller for 0..d).
            unsafe {
                let mut acc = _mm256_loadu_ps(y.as_ptr().add(c));
                for (j, &pj) in p.iter().enumerate() {
                    let v = load8(rows.as_ptr().add(j * stride + c));
                    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(pj), v));
                }
                _mm256_storeu_ps(y.as_mut_ptr().add(c), acc);
            }
        }
        for e in n8..d {
            for (j, &pj) in p.iter().enumerate() {
                y[e] += pj * rows[j * stride + e].to_f32();
            }
        }
    }

    /// y += a x for f16 `x`.
    ///
    /// # Safety
    /// AVX2 and F16C are available and `x.len() == y.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn axpy_f16(y: &mut [f32], a: f32, x: &[f16]) {
        let n8 = y.len() / 8 * 8;
        let av = _mm256_set1_ps(a);
        for i in (0..n8).step_by(8) {
            // SAFETY: i + 8 <= n8 <= len of both slices.
            unsafe {
                let p = y.as_mut_ptr().add(i);
                let v = _mm256_add_ps(
                    _mm256_loadu_ps(p),
                    _mm256_mul_ps(av, load8(x.as_ptr().add(i))),
                );
                _mm256_storeu_ps(p, v);
            }
        }
        for (y, &x) in y[n8..].iter_mut().zip(&x[n8..]) {
            *y += a * x.to_f32();
        }
    }
}
