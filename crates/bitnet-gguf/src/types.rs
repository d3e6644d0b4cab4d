//! ggml tensor types: ids, block sizes and exact byte sizes.
//!
//! The table follows ggml's `type_traits` (ggml/src/ggml.c): a quantised type stores blocks of
//! `block_size` elements in `type_size` bytes along the first (fastest) dimension. Ids that
//! upstream has removed are rejected, except 36, which Microsoft's bitnet.cpp uses for I2_S.

use crate::GgufError;

macro_rules! ggml_types {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, $block:literal, $size:literal; )*) => {
        /// A ggml tensor storage type.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum GgmlType {
            $( $(#[$doc])* $name = $id, )*
        }

        impl GgmlType {
            /// Every known type, in id order.
            pub const ALL: &'static [GgmlType] = &[$(GgmlType::$name,)*];

            /// The type for a GGUF type id, if known.
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $( $id => Some(Self::$name), )*
                    _ => None,
                }
            }

            /// The name ggml prints (`F16`, `Q4_K`, `I2_S`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$name => stringify!($name), )*
                }
            }

            /// Elements per block (1 for plain types; 4 for I2_S's 2-bit codes).
            pub fn block_size(self) -> usize {
                match self {
                    $( Self::$name => $block, )*
                }
            }

            /// Bytes per block (for I2_S the per-tensor trailer is not included; see
            /// [`GgmlType::tensor_bytes`]).
            pub fn type_size(self) -> usize {
                match self {
                    $( Self::$name => $size, )*
                }
            }
        }
    };
}

ggml_types! {
    /// 32-bit float.
    F32 = 0, 1, 4;
    /// IEEE half float.
    F16 = 1, 1, 2;
    /// 4-bit, 32-element blocks with an f16 scale.
    Q4_0 = 2, 32, 18;
    /// 4-bit with scale and minimum.
    Q4_1 = 3, 32, 20;
    /// 5-bit.
    Q5_0 = 6, 32, 22;
    /// 5-bit with minimum.
    Q5_1 = 7, 32, 24;
    /// 8-bit.
    Q8_0 = 8, 32, 34;
    /// 8-bit with sum.
    Q8_1 = 9, 32, 36;
    /// 2-bit k-quant.
    Q2_K = 10, 256, 84;
    /// 3-bit k-quant.
    Q3_K = 11, 256, 110;
    /// 4-bit k-quant.
    Q4_K = 12, 256, 144;
    /// 5-bit k-quant.
    Q5_K = 13, 256, 176;
    /// 6-bit k-quant.
    Q6_K = 14, 256, 210;
    /// 8-bit k-quant (intermediate).
    Q8_K = 15, 256, 292;
    /// i-quant 2.06 bpw.
    IQ2_XXS = 16, 256, 66;
    /// i-quant 2.31 bpw.
    IQ2_XS = 17, 256, 74;
    /// i-quant 3.06 bpw.
    IQ3_XXS = 18, 256, 98;
    /// i-quant 1.56 bpw.
    IQ1_S = 19, 256, 50;
    /// 4-bit non-linear.
    IQ4_NL = 20, 32, 18;
    /// i-quant 3.44 bpw.
    IQ3_S = 21, 256, 110;
    /// i-quant 2.5 bpw.
    IQ2_S = 22, 256, 82;
    /// i-quant 4.25 bpw.
    IQ4_XS = 23, 256, 136;
    /// 8-bit integer.
    I8 = 24, 1, 1;
    /// 16-bit integer.
    I16 = 25, 1, 2;
    /// 32-bit integer.
    I32 = 26, 1, 4;
    /// 64-bit integer.
    I64 = 27, 1, 8;
    /// 64-bit float.
    F64 = 28, 1, 8;
    /// i-quant 1.75 bpw.
    IQ1_M = 29, 256, 56;
    /// bfloat16.
    BF16 = 30, 1, 2;
    /// Ternary, base-3 packed (1.69 bpw).
    TQ1_0 = 34, 256, 54;
    /// Ternary, 2-bit packed (2.06 bpw).
    TQ2_0 = 35, 256, 66;
    /// Microsoft bitnet.cpp ternary: 2-bit codes plus a 32-byte trailer holding the scale.
    I2_S = 36, 4, 1;
    /// Microscaling FP4.
    MXFP4 = 39, 32, 17;
}

/// Bytes of the trailer bitnet.cpp appends to every I2_S tensor (f32 scale, then padding).
pub const I2S_TRAILER_BYTES: usize = 32;

impl GgmlType {
    /// The GGUF type id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// Exact data bytes of a tensor with ggml dims `dims` (`ne`, fastest first).
    ///
    /// Fails when the element count overflows or the first dimension is not a whole number of
    /// blocks (ggml cannot address such a tensor). `name` is only used in the error.
    pub fn tensor_bytes(self, name: &str, dims: &[u64]) -> Result<usize, GgufError> {
        let n = element_count(name, dims)?;
        let bad_shape = |reason: String| GgufError::BadShape {
            name: name.to_string(),
            dims: dims.to_vec(),
            reason,
        };
        if self == Self::I2_S {
            // bitnet.cpp sizes I2_S as ne/4 bytes plus the trailer, over the whole tensor.
            if n % 4 != 0 {
                return Err(bad_shape(format!(
                    "I2_S needs a multiple of 4 elements, got {n}"
                )));
            }
            return (n / 4)
                .checked_add(I2S_TRAILER_BYTES)
                .ok_or_else(|| bad_shape("byte size overflows".into()));
        }
        let block = self.block_size() as u64;
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % block != 0 {
            return Err(bad_shape(format!(
                "{} stores blocks of {block} elements along the first dimension; {ne0} is not a multiple",
                self.name()
            )));
        }
        (n / self.block_size())
            .checked_mul(self.type_size())
            .ok_or_else(|| bad_shape("byte size overflows".into()))
    }
}

/// Number of elements of `dims`, checked against overflow of `usize` and ggml's `int64_t`.
pub fn element_count(name: &str, dims: &[u64]) -> Result<usize, GgufError> {
    dims.iter()
        .try_fold(1u64, |acc, &d| {
            acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
        })
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| GgufError::ElementOverflow {
            name: name.to_string(),
            dims: dims.to_vec(),
        })
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_removed_ids_are_unknown() {
        for &t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        for removed in [4, 5, 31, 32, 33, 37, 38, 40, 1000] {
            assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
        }
    }

    #[test]
    fn exact_sizes() {
        let b = |t: GgmlType, dims: &[u64]| t.tensor_bytes("t", dims).unwrap();
        assert_eq!(b(GgmlType::F32, &[3, 5]), 60);
        assert_eq!(b(GgmlType::BF16, &[7]), 14);
        assert_eq!(b(GgmlType::I8, &[7]), 7);
        assert_eq!(b(GgmlType::Q4_0, &[64, 2]), 4 * 18);
        assert_eq!(b(GgmlType::Q6_K, &[256, 3]), 3 * 210);
        assert_eq!(b(GgmlType::TQ2_0, &[256, 2]), 2 * 66);
        assert_eq!(b(GgmlType::TQ1_0, &[512]), 2 * 54);
        // bitnet.cpp: 2560x2560 I2_S = 2560*2560/4 + 32 bytes.
        assert_eq!(b(GgmlType::I2_S, &[2560, 2560]), 2560 * 2560 / 4 + 32);
    }

    #[test]
    fn partial_blocks_and_overflow_are_errors() {
        assert!(matches!(
            GgmlType::Q4_K.tensor_bytes("w", &[100, 2]),
            Err(GgufError::BadShape { .. })
        ));
        assert!(matches!(
            GgmlType::F32.tensor_bytes("w", &[u64::MAX, 2]),
            Err(GgufError::ElementOverflow { .. })
        ));
    }
}
