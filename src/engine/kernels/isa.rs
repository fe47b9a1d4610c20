//! Which instruction set the kernels run on: detected once at run time, or
//! forced with `LMSCOPE_KERNELS`.

use std::sync::OnceLock;

/// The instruction set the dot products use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    /// AVX2 + FMA + F16C (x86-64).
    Avx2,
    /// The same with AVX-VNNI's byte dot products.
    Avx2Vnni,
    /// AVX-512 (F, BW) with its VNNI for the dot products, on 512-bit
    /// registers; the float ops as `Avx2`.
    Avx512Vnni,
}

impl Isa {
    /// The best this CPU supports (never AMX, which faults in some VMs).
    pub fn detect() -> Isa {
        [Isa::Avx512Vnni, Isa::Avx2Vnni, Isa::Avx2]
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Scalar)
    }

    /// Whether this CPU can run kernels for `self`.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            match self {
                Isa::Scalar => true,
                Isa::Avx2 => avx2,
                Isa::Avx2Vnni => avx2 && has!("avxvnni"),
                Isa::Avx512Vnni => {
                    avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Isa::Scalar
        }
    }
}

/// The instruction set in use: detected once, or chosen by
/// `LMSCOPE_KERNELS` (`scalar`; `avx2`: AVX2 without VNNI; `avxvnni`: AVX2
/// with AVX-VNNI, not AVX-512), where the CPU has it.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let forced = match std::env::var("LMSCOPE_KERNELS").as_deref() {
            Ok("scalar") => Some(Isa::Scalar),
            Ok("avx2") => Some(Isa::Avx2),
            Ok("avxvnni") => Some(Isa::Avx2Vnni),
            _ => None,
        };
        forced.filter(|i| i.supported()).unwrap_or_else(Isa::detect)
    })
}
