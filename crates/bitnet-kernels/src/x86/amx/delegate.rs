//! The op families the AMX backend has no code of its own for: the AVX-512 VNNI backend's
//! (dense heads, activation quantisation, attention), called through it. Its
//! `Backend::kernel_id` names that code, so receipts report it as what ran.

use super::Amx;
use crate::ops::{
    ActQuantOps, AttentionOps, CausalTile, DenseMatmul, DenseOps, KernelId, Q4KMatmul, Q6KMatmul,
    Q8Matmul,
};
use crate::packed::OutRows;
use half::{bf16, f16};

impl DenseOps for Amx {
    fn f16_rows(&self, m: &DenseMatmul<'_, f16>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().f16_rows(m, out)
    }

    fn bf16_rows(&self, m: &DenseMatmul<'_, bf16>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().bf16_rows(m, out)
    }

    fn f32_rows(&self, m: &DenseMatmul<'_, f32>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().f32_rows(m, out)
    }

    fn q8_rows(&self, m: &Q8Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().q8_rows(m, out)
    }

    fn q6k_rows(&self, m: &Q6KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().q6k_rows(m, out)
    }

    fn q4k_rows(&self, m: &Q4KMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().q4k_rows(m, out)
    }
}

impl ActQuantOps for Amx {
    fn quantize_rows(&self, x: &[f32], cols: usize, q: &mut [i8], scales: &mut [f32]) -> KernelId {
        self.vnni().quantize_rows(x, cols, q, scales)
    }
}

impl AttentionOps for Amx {
    fn kv_causal(&self, tile: &CausalTile<'_>, work: &mut [f32], out: &mut [f32]) -> KernelId {
        self.vnni().kv_causal(tile, work, out)
    }
}
