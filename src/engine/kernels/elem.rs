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
