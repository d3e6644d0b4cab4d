//! AMX ternary GEMM on layout `i2s256`: `tdpbusd` on 16 x 64 tiles.
//!
//! # Tiles
//! - A (`tmm4`): 16 weight rows x 64 columns of unsigned codes `c = v + 1`, one byte each.
//!   Plane `j` of an `i2s256` block is 64 consecutive columns, so one 64-byte load, a shift
//!   and a mask give one A row: a block of 16 rows decodes into four A tiles (4 KiB, on the
//!   stack) with no shuffle.
//! - B (`tmm5`): 64 columns x 16 tokens of signed activations in AMX's "VNNI" order (tile
//!   row `r` holds, for each token, its four bytes of columns `4r..4r + 4`). Built once per
//!   call by each thread, for all tokens, into a thread-local buffer that grows to the
//!   largest call and is then reused (no allocation per call after the first).
//! - C (`tmm0`-`tmm3`): four 16 x 16 blocks of exact i32 sums (16 rows x 64 tokens),
//!   accumulated over the whole row, then stored and finished like every other kernel:
//!   `finish(c . q - sum q, s, w_scale)`, so results equal the scalar reference bit for bit.
//!
//! Row ranges handed to a thread are cut by the pool into equal chunks (multiples of 16 for
//! the 2B4T shapes); rows left over below a whole tile run the VNNI kernel.

use super::Amx;
use crate::act_quant::finish;
use crate::ops::{KernelId, TernaryF32Matmul, TernaryMatmul, TernaryMatmulOps};
use crate::packed::{OutRows, PackedLayout};
use std::arch::asm;
use std::arch::x86_64::*;
use std::cell::Cell;

/// Id of the AMX backend's ternary matmul (tiles for GEMM, the VNNI kernels below
/// [`MIN_TOKENS`]).
pub(crate) const ID: KernelId = "i2s/amx";

/// Weight rows per A tile and tokens per B tile.
const T: usize = 16;
/// Columns per K step (bytes per tile row).
const K: usize = 64;
/// Bytes per tile.
const TILE_BYTES: usize = T * K;
/// Token tiles per pass over a row tile (C tiles `tmm0`-`tmm3`).
const GROUP: usize = 4;
/// Fewest tokens for which tiles are used: below one B tile's 16 token columns most of each
/// multiply would be padding.
pub(crate) const MIN_TOKENS: usize = 16;

/// The tile configuration `ldtilecfg` reads (palette 1): tiles 0-5 as 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = {
    let mut c = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        colsb: [0; 16],
        rows: [0; 16],
    };
    let mut t = 0;
    while t < 6 {
        c.colsb[t] = K as u16;
        c.rows[t] = T as u8;
        t += 1;
    }
    c
};

thread_local! {
    /// Each thread's B tiles (see the module doc), taken out for a call and put back.
    static B_TILES: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    /// Each thread's `sum q` per token.
    static SUMS: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// Lays out `q: [n][cols]` as B tiles: tile `(tt, kc)` at `(tt * kchunks + kc) * 1024`,
/// row `r`, token `i` = bytes `q[16 tt + i][64 kc + 4r..][..4]`, zero beyond `n` and `cols`.
fn fill_b(q: &[i8], n: usize, cols: usize, kchunks: usize, b: &mut Vec<u8>) {
    let tiles = n.div_ceil(T);
    b.clear();
    b.resize(tiles * kchunks * TILE_BYTES, 0);
    for tok in 0..n {
        let (tt, i) = (tok / T, tok % T);
        let qt = &q[tok * cols..(tok + 1) * cols];
        let at = |c4: usize| {
            let (kc, r) = (c4 / (K / 4), c4 % (K / 4));
            (tt * kchunks + kc) * TILE_BYTES + r * K + i * 4
        };
        // Whole quads as one 4-byte move each (a slice copy of run-time length was a
        // `memcpy` call per quad: 5 % of a long prompt's time in `perf`).
        let quads = qt.chunks_exact(4);
        let tail = quads.remainder();
        for (c4, quad) in quads.enumerate() {
            let at = at(c4);
            let quad: [i8; 4] = quad.try_into().expect("chunks_exact(4)");
            b[at..at + 4].copy_from_slice(&quad.map(|x| x as u8));
        }
        if !tail.is_empty() {
            let at = at(cols / 4);
            for (dst, &src) in b[at..at + tail.len()].iter_mut().zip(tail) {
                *dst = src as u8;
            }
        }
    }
}

/// Decodes block `b` of 16 rows into four A tiles (plane `j` -> `a[j]`).
///
/// # Safety
/// AVX-512F/BW; every `rows[m]` must hold at least `(b + 1) * 64` bytes.
#[inline(always)]
unsafe fn decode_a(rows: &[*const u8; T], b: usize, a: &mut [[u8; TILE_BYTES]; 4]) {
    // SAFETY: only forwards this unsafe fn's own contract (the CPU features it is compiled for, pointers and lengths its safe caller checked); no further obligation.
    unsafe {
        let mask = _mm512_set1_epi8(3);
        for (m, row) in rows.iter().enumerate() {
            let v = _mm512_loadu_si512(row.add(b * K) as *const __m512i);
            let planes = [
                _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask),
                _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
                _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask),
                _mm512_and_si512(v, mask),
            ];
            for (tile, p) in a.iter_mut().zip(planes) {
                _mm512_storeu_si512(tile.as_mut_ptr().add(m * K) as *mut __m512i, p);
            }
        }
    }
}

/// `tmm4 = a` (16 rows of 64 bytes).
///
/// # Safety
/// AMX configured with [`CONFIG`]; `a` readable for 1024 bytes.
#[inline(always)]
unsafe fn load_a(a: *const u8) {
    // SAFETY: the caller's contract; `tileloadd` reads 16 rows of 64 bytes at stride 64.
    unsafe {
        asm!("tileloadd tmm4, [{p} + {s}*1]", p = in(reg) a, s = in(reg) K, options(nostack, readonly))
    }
}

/// `tmm5 = b` (16 rows of 64 bytes).
///
/// # Safety
/// As [`load_a`].
#[inline(always)]
unsafe fn load_b(b: *const u8) {
    // SAFETY: as `load_a`.
    unsafe {
        asm!("tileloadd tmm5, [{p} + {s}*1]", p = in(reg) b, s = in(reg) K, options(nostack, readonly))
    }
}

/// `tmm<t> += tmm4 (u8) * tmm5 (i8)`.
///
/// # Safety
/// AMX configured with [`CONFIG`]; `t < 4`.
#[inline(always)]
unsafe fn dot(t: usize) {
    // SAFETY: the caller's contract; `tdpbusd` touches only tile registers.
    unsafe {
        match t {
            0 => asm!("tdpbusd tmm0, tmm4, tmm5", options(nostack, nomem)),
            1 => asm!("tdpbusd tmm1, tmm4, tmm5", options(nostack, nomem)),
            2 => asm!("tdpbusd tmm2, tmm4, tmm5", options(nostack, nomem)),
            _ => asm!("tdpbusd tmm3, tmm4, tmm5", options(nostack, nomem)),
        }
    }
}

/// Stores `tmm<t>` (16 x 16 i32) to `c`.
///
/// # Safety
/// AMX configured with [`CONFIG`]; `t < 4`; `c` writable for 1024 bytes.
#[inline(always)]
unsafe fn store_c(t: usize, c: *mut i32) {
    // SAFETY: the caller's contract; `tilestored` writes 16 rows of 64 bytes at stride 64.
    unsafe {
        match t {
            0 => {
                asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) c, s = in(reg) K, options(nostack))
            }
            1 => {
                asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) c, s = in(reg) K, options(nostack))
            }
            2 => {
                asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) c, s = in(reg) K, options(nostack))
            }
            _ => {
                asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) c, s = in(reg) K, options(nostack))
            }
        }
    }
}

/// The tile GEMM over the whole 16-row tiles of `out`; returns the first row left over.
///
/// # Safety
/// AMX usable by this process (see [`Amx::get`]), AVX-512F/BW; `m`'s weights in `i2s256`.
#[target_feature(enable = "avx2,avx512f,avx512bw")]
unsafe fn tile_rows(m: &TernaryMatmul<'_>, out: &mut OutRows<'_>, b: &[u8], sums: &[i32]) -> usize {
    let (w, n, scales) = (m.w(), m.n(), m.scales());
    let (blocks, w_scale) = (w.blocks(), w.scale());
    let kchunks = blocks * 4;
    let token_tiles = n.div_ceil(T);
    let rows = out.rows();
    let whole = rows.start + rows.len() / T * T;
    let mut a = [[0u8; TILE_BYTES]; 4];
    let mut c = [[0i32; T * T]; GROUP];
    // SAFETY: AMX is usable (the caller's contract); `CONFIG` is a valid palette-1 config.
    unsafe { asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) };
    for r0 in (rows.start..whole).step_by(T) {
        let rp: [*const u8; T] = std::array::from_fn(|i| w.row(r0 + i).as_ptr());
        let mut g0 = 0;
        while g0 < token_tiles {
            let gt = GROUP.min(token_tiles - g0);
            // SAFETY: tiles configured above.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                )
            };
            for blk in 0..blocks {
                // SAFETY: every row has `blocks * 64` bytes (`i2s256`); the features are
                // enabled on this function.
                unsafe { decode_a(&rp, blk, &mut a) };
                for (j, tile) in a.iter().enumerate() {
                    let kc = 4 * blk + j;
                    // SAFETY: `tile` is 1024 bytes; B tile `(g0 + t, kc)` lies inside `b`
                    // (`fill_b` sized it for `token_tiles * kchunks` tiles); `t < GROUP`.
                    unsafe {
                        load_a(tile.as_ptr());
                        for t in 0..gt {
                            load_b(b.as_ptr().add(((g0 + t) * kchunks + kc) * TILE_BYTES));
                            dot(t);
                        }
                    }
                }
            }
            for (t, ct) in c.iter_mut().enumerate().take(gt) {
                // SAFETY: `ct` is 1024 bytes; `t < GROUP`.
                unsafe { store_c(t, ct.as_mut_ptr()) };
            }
            for (t, ct) in c.iter().enumerate().take(gt) {
                for i in 0..T {
                    let tok = (g0 + t) * T + i;
                    if tok >= n {
                        break;
                    }
                    let y = out.token(tok);
                    for mm in 0..T {
                        y[r0 + mm - rows.start] =
                            finish(ct[mm * T + i] - sums[tok], scales[tok], w_scale);
                    }
                }
            }
            g0 += gt;
        }
    }
    // SAFETY: tiles configured above; releasing returns the tile state to its init state.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
    whole
}

impl TernaryMatmulOps for Amx {
    fn layout(&self) -> PackedLayout {
        PackedLayout::I2s256
    }

    fn ternary_rows(&self, m: &TernaryMatmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        let w = m.w();
        if m.n() < MIN_TOKENS || w.layout() != PackedLayout::I2s256 || out.rows().len() < T {
            self.vnni().ternary_rows(m, out);
            return ID;
        }
        let (n, cols) = (m.n(), w.cols());
        let mut b = B_TILES.take();
        let mut sums = SUMS.take();
        fill_b(m.q(), n, cols, w.blocks() * 4, &mut b);
        sums.clear();
        sums.extend(
            m.q()
                .chunks_exact(cols)
                .map(|qt| qt.iter().map(|&v| i32::from(v)).sum::<i32>()),
        );
        // SAFETY: an `Amx` exists only when `Amx::get` saw AMX-INT8 granted and the VNNI
        // backend's features (AVX-512F/BW among them); the layout is checked above.
        let rest = unsafe { tile_rows(m, out, &b, &sums) };
        B_TILES.set(b);
        SUMS.set(sums);
        let rows = out.rows();
        if rest < rows.end {
            // SAFETY: the tile rows above are written and no longer borrowed; this view
            // covers the remaining rows only and `out` is not used while it lives.
            let mut tail = unsafe { out.sub(rest..rows.end) };
            self.vnni().ternary_rows(m, &mut tail);
        }
        ID
    }

    fn ternary_f32_rows(&self, m: &TernaryF32Matmul<'_>, out: &mut OutRows<'_>) -> KernelId {
        self.vnni().ternary_f32_rows(m, out)
    }
}
