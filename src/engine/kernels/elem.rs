//! The element types the KV cache holds its rows in: f32, and f16 (what
//! llama.cpp's default cache holds; half the memory, and exact in quantised
//! mode, where queries, keys and values are rounded to f16 before they are
//! cached). The attention kernels (`float.rs`, `x86.rs`) read either: a
//! value gives the same result whichever way it is stored.

use half::f16;

/// A type the KV cache stores rows in.
pub trait CacheElem: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;

    /// Appends `xs`, converted, to `out` (a row of the cache).
    fn extend_from_f32(out: &mut Vec<Self>, xs: &[f32]) {
        out.extend(xs.iter().map(|&x| Self::from_f32(x)));
    }

    /// Eight elements at `p` as f32 lanes.
    ///
    /// # Safety
    /// The CPU has AVX2 and F16C, and eight elements at `p` are readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;

    /// Sixteen elements at `p` as f32 lanes.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, and sixteen elements at `p` are readable.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> std::arch::x86_64::__m512;
}

impl CacheElem for f32 {
    fn from_f32(x: f32) -> Self {
        x
    }

    fn to_f32(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        // SAFETY: the caller guarantees eight readable floats at `p`.
        unsafe { std::arch::x86_64::_mm256_loadu_ps(p) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn load16(p: *const f32) -> std::arch::x86_64::__m512 {
        // SAFETY: the caller guarantees sixteen readable floats at `p`.
        unsafe { std::arch::x86_64::_mm512_loadu_ps(p) }
    }
}

impl CacheElem for f16 {
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }

    fn extend_from_f32(out: &mut Vec<Self>, xs: &[f32]) {
        // Converted on the stack and copied in (wide stores): zeroing the
        // room first, in two-byte stores to memory no cache holds, stalled
        // the appending thread on every cache row.
        let mut buf = [f16::ZERO; 64];
        for chunk in xs.chunks(64) {
            let buf = &mut buf[..chunk.len()];
            super::f16::to_f16(chunk, buf);
            out.extend_from_slice(buf);
        }
    }

    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees eight readable f16 (16 bytes) at `p`.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }

    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma,f16c")]
    unsafe fn load16(p: *const f16) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // SAFETY: the caller guarantees sixteen readable f16 (32 bytes) at `p`.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
}
