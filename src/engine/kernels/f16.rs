//! f32 to f16 conversions (the f16 KV cache, llama.cpp's f16 rounding of
//! queries, keys, values and attention probabilities), eight at a time with
//! F16C where present: the same IEEE rounding (to nearest even) as
//! `half::f16::from_f32`.

use super::isa::{Isa, isa};

/// Rounds each value to the nearest f16 and back (llama.cpp's f16 KV cache
/// and attention probabilities).
pub fn round_f16(xs: &mut [f32]) {
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reports an x86 set only where AVX2, FMA and F16C
        // were detected.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86_f16::round_f16(xs) },
        _ => xs
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
    }
}

/// Each value rounded to the nearest f16 (ties to even), as
/// `half::f16::from_f32` does, eight at a time where F16C is present.
pub fn to_f16(xs: &[f32], out: &mut [half::f16]) {
    assert_eq!(xs.len(), out.len());
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` reports an x86 set only where AVX2, FMA and F16C
        // were detected; the function checks the lengths.
        Isa::Avx2 | Isa::Avx2Vnni | Isa::Avx512Vnni => unsafe { x86_f16::to_f16(xs, out) },
        _ => xs
            .iter()
            .zip(out)
            .for_each(|(&x, o)| *o = half::f16::from_f32(x)),
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86_f16 {
    use std::arch::x86_64::*;

    /// Rounds each value to the nearest f16 (ties to even) and back, 8 lanes at
    /// a time with F16C's conversions (the same IEEE conversion as
    /// `half::f16::from_f32`, without a call per value).
    ///
    /// # Safety
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_f16(xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds 8 floats.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let r = _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), r) };
        }
        for x in chunks.into_remainder() {
            *x = half::f16::from_f32(*x).to_f32();
        }
    }

    /// `half::f16::from_f32` of each value, 8 lanes at a time with F16C (the
    /// same IEEE rounding, to nearest even).
    ///
    /// # Safety
    /// The CPU supports AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn to_f16(xs: &[f32], out: &mut [half::f16]) {
        assert_eq!(xs.len(), out.len());
        let body = xs.len() / 8 * 8;
        for i in (0..body).step_by(8) {
            // SAFETY: i + 8 <= body <= both lengths; f16 is 2 bytes (repr(transparent) u16).
            unsafe {
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(
                    xs.as_ptr().add(i),
                ));
                _mm_storeu_si128(out.as_mut_ptr().add(i) as *mut __m128i, h);
            }
        }
        for (o, &x) in out[body..].iter_mut().zip(&xs[body..]) {
            *o = half::f16::from_f32(x);
        }
    }
}
