//! A bounds walk over a GGUF header before candle parses it: every count and
//! length in the file is checked against the bytes left, so that no buffer
//! is ever sized from an unchecked number (a corrupt string length or array
//! count would otherwise ask for exabytes), and the few values that candle
//! divides or multiplies by (the alignment, tensor dimensions) are sane.

use std::io::{BufRead, Read};

/// The most dimensions a GGUF tensor has (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// The most elements one tensor may hold: 2^40, far above any model that
/// fits on one machine, far below where byte counts overflow.
const MAX_ELEMENTS: u64 = 1 << 40;
/// Arrays nest (an array of arrays) at most this deep.
const MAX_DEPTH: u32 = 4;

/// Walks the header of a file of `file_size` bytes read from its start;
/// the error says which field is wrong.
pub fn check(reader: &mut impl BufRead, file_size: u64) -> Result<(), String> {
    let mut w = Walker {
        reader,
        pos: 0,
        size: file_size,
    };
    w.skip(4, "magic")?;
    let version = w.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version}; lmscope reads versions 2 and 3"
        ));
    }
    let n_tensors = w.u64("tensor count")?;
    let n_kv = w.u64("metadata count")?;
    // A metadata entry takes at least 12 bytes (key length, value type), a
    // tensor entry at least 24 (name length, rank, type, offset).
    w.fits(n_kv, 12, "metadata count")?;
    w.fits(n_tensors, 24, "tensor count")?;
    for _ in 0..n_kv {
        let key = w.string("metadata key")?;
        let ty = w.u32(&key)?;
        if key == "general.alignment" {
            let align = match ty {
                4 => w.u32(&key)? as u64,
                _ => return Err(format!("`{key}` has value type {ty}, not u32")),
            };
            if align == 0 || !align.is_power_of_two() {
                return Err(format!("`{key}` is {align}, not a power of two"));
            }
            continue;
        }
        w.value(ty, &key, 0)?;
    }
    let mut elements_total: u64 = 0;
    for _ in 0..n_tensors {
        let name = w.string("tensor name")?;
        let rank = w.u32(&name)?;
        if rank == 0 || rank > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {rank} dimensions (1 to {MAX_DIMS})"
            ));
        }
        let mut elements: u64 = 1;
        for _ in 0..rank {
            let d = w.u64(&name)?;
            elements = elements
                .checked_mul(d)
                .filter(|&e| e <= MAX_ELEMENTS)
                .ok_or_else(|| format!("tensor `{name}` has a dimension of {d}"))?;
        }
        if elements == 0 {
            return Err(format!("tensor `{name}` has no elements"));
        }
        elements_total = elements_total.saturating_add(elements);
        w.u32(&name)?; // type: candle rejects unknown ones
        w.u64(&name)?; // offset: checked against the file once parsed
    }
    // Weights take at least two bits an element in every supported type.
    if elements_total / 4 > file_size {
        return Err(format!(
            "the tensors claim {elements_total} elements but the file has {file_size} bytes"
        ));
    }
    Ok(())
}

struct Walker<'a, R> {
    reader: &'a mut R,
    pos: u64,
    size: u64,
}

impl<R: BufRead> Walker<'_, R> {
    fn left(&self) -> u64 {
        self.size.saturating_sub(self.pos)
    }

    /// `count` items of at least `each` bytes fit in what is left.
    fn fits(&self, count: u64, each: u64, what: &str) -> Result<(), String> {
        if count.checked_mul(each).is_none_or(|n| n > self.left()) {
            return Err(format!(
                "{what} of {count} at byte {} does not fit in the file",
                self.pos
            ));
        }
        Ok(())
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.left() {
            return Err(format!(
                "{what} at byte {} runs {n} bytes past the end of the file",
                self.pos
            ));
        }
        let copied = std::io::copy(&mut (&mut *self.reader).take(n), &mut std::io::sink())
            .map_err(|e| format!("reading {what}: {e}"))?;
        if copied != n {
            return Err(format!("{what} at byte {}: the file ends early", self.pos));
        }
        self.pos += n;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        if (N as u64) > self.left() {
            return Err(format!("{what} at byte {}: the file ends early", self.pos));
        }
        let mut b = [0u8; N];
        self.reader
            .read_exact(&mut b)
            .map_err(|e| format!("{what} at byte {}: {e}", self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        self.bytes::<8>(what).map(u64::from_le_bytes)
    }

    /// A string: its length is checked before anything is read; keys (the
    /// only strings kept) are short.
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u64(what)?;
        self.fits(n, 1, &format!("{what} length"))?;
        if n > 1 << 16 {
            return Err(format!("{what} at byte {} is {n} bytes long", self.pos));
        }
        let mut b = vec![0u8; n as usize];
        self.reader
            .read_exact(&mut b)
            .map_err(|e| format!("{what} at byte {}: {e}", self.pos))?;
        self.pos += n;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<(), String> {
        match ty {
            // u8, i8, bool | u16, i16 | u32, i32, f32 | u64, i64, f64
            0 | 1 | 7 => self.skip(1, key),
            2 | 3 => self.skip(2, key),
            4..=6 => self.skip(4, key),
            10..=12 => self.skip(8, key),
            8 => {
                let n = self.u64(key)?;
                self.skip(n, key)
            }
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("`{key}` nests arrays deeper than {MAX_DEPTH}"));
                }
                let inner = self.u32(key)?;
                let n = self.u64(key)?;
                let each = match inner {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => return Err(format!("`{key}` holds values of unknown type {inner}")),
                };
                self.fits(n, each, &format!("`{key}`'s length"))?;
                match inner {
                    8 | 9 => (0..n).try_for_each(|_| self.value(inner, key, depth + 1)),
                    _ => self.skip(n * each, key),
                }
            }
            _ => Err(format!("`{key}` has unknown value type {ty}")),
        }
    }
}
