//! The kernel weight layout ([`PackedTernary`]) and the output view kernels write into.
//!
//! # Layout `i2s128`
//! Each row is padded to a multiple of 128 columns and stored as 32-byte blocks in the
//! I2_S interleave: byte `k` of block `b` holds the codes of columns `128b+k`, `+32`, `+64`,
//! `+96` in bits 7:6, 5:4, 3:2, 1:0, with code `c = value + 1` (so 0/1/2 = -1/0/+1, exactly
//! I2_S's codes). Padding columns get code 1 (weight 0), so kernels can run whole blocks
//! and only the activations need a zero tail.
//!
//! Why this layout: GEMV is memory bound, and 2 bits per weight is the least any
//! byte-aligned SIMD decode can stream (0.25 byte/weight). The interleave makes the decode
//! four shift+mask operations on a whole vector: one 32-byte load yields four 32-lane code
//! vectors lined up with four *contiguous* 32-byte slices of the activations (AVX2 uses it
//! as is, NEON as two 16-byte halves, VNNI feeds it to `vpdpbusd`). Rows are padded
//! separately (unlike I2_S, whose blocks run across rows) so that any row range can be
//! handed to a thread. For `cols % 128 == 0` a row is byte-identical to the I2_S bytes.
//!
//! # Layout `i2s256`
//! The same interleave one size up, for 512-bit vectors: 256-column blocks of 64 bytes, byte
//! `k` of block `b` holding columns `256b+k`, `+64`, `+128`, `+192` in bits 7:6 ... 1:0. One
//! 64-byte load then yields four 64-lane code vectors lined up with four contiguous 64-byte
//! slices of the activations, so an AVX-512 kernel needs no shuffle of weights or
//! activations (with `i2s128`, a 512-bit load spans two blocks whose activation slices are
//! 128 columns apart). This is ik_llama.cpp's repack-at-load idea applied to the interleave:
//! I2_S files are transcoded once at load ([`crate::formats::i2s_to_packed`]), rows padded
//! to 256 columns (every 2B4T shape is a multiple of 256 already).

use crate::TernaryWeights;
use bytes::Bytes;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::ptr::NonNull;

/// Columns per packed block.
pub const BLOCK: usize = 128;
/// Bytes per packed block.
pub const BLOCK_BYTES: usize = 32;
/// A packed weight layout some backend streams.
///
/// An enum rather than an id string: a backend `match`es the layout of the weights it is
/// handed, so adding a layout is a compile error in every backend until it either streams
/// the new layout or refuses it, instead of a run-time string comparison each of them must
/// remember. [`crate::Kernels`] checks once per call that the weights are in the layout its
/// backend declares ([`crate::TernaryMatmulOps::layout`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackedLayout {
    /// 2-bit codes in 128-column blocks with the I2_S interleave, each row padded on its own
    /// (see the module doc).
    I2s128,
    /// 2-bit codes in 256-column blocks of 64 bytes, the same interleave for 512-bit
    /// vectors (see the module doc).
    I2s256,
}

impl PackedLayout {
    /// The layout's id, e.g. `"i2s128"` (reported in receipts).
    pub fn id(self) -> &'static str {
        match self {
            PackedLayout::I2s128 => "i2s128",
            PackedLayout::I2s256 => "i2s256",
        }
    }

    /// Columns per block (rows are padded to a multiple of it).
    pub fn block_cols(self) -> usize {
        match self {
            PackedLayout::I2s128 => BLOCK,
            PackedLayout::I2s256 => 2 * BLOCK,
        }
    }

    /// Bytes per block (4 codes per byte).
    pub fn block_bytes(self) -> usize {
        self.block_cols() / 4
    }
}

impl fmt::Display for PackedLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Ternary weights repacked once at load time into the layout the kernels stream (see the
/// module doc). Opaque: build it with [`crate::Kernels::pack`] or [`PackedTernary::pack`].
#[derive(Clone, PartialEq)]
pub struct PackedTernary {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    scale: f32,
    layout: PackedLayout,
    /// The packed rows: a buffer of this matrix's own, or its slice of the buffer
    /// [`PackedTernary::share_huge_pages`] moved a model's matrices into.
    data: Bytes,
}

impl std::fmt::Debug for PackedTernary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedTernary")
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("scale", &self.scale)
            .field("layout", &self.layout)
            .field("size_bytes", &self.data.len())
            .finish()
    }
}

impl PackedTernary {
    /// Packs `w` into `layout`.
    ///
    /// # Panics
    /// If `w.values.len() != w.rows * w.cols` or a value is outside `-1..=1` (a
    /// [`TernaryWeights`] breaking its own invariant is a programming error; decoders of
    /// untrusted bytes return errors before this point).
    pub fn pack(w: &TernaryWeights, layout: PackedLayout) -> Self {
        assert_eq!(
            w.values.len(),
            w.rows * w.cols,
            "TernaryWeights: values.len() != rows * cols"
        );
        let (block_cols, block_bytes) = (layout.block_cols(), layout.block_bytes());
        let row_bytes = w.cols.div_ceil(block_cols) * block_bytes;
        // 0x55 = four codes 1 (weight 0): padding stays zero weight.
        let mut data = vec![0x55u8; row_bytes * w.rows];
        if w.cols > 0 {
            for (row, out) in w
                .values
                .chunks_exact(w.cols)
                .zip(data.chunks_exact_mut(row_bytes))
            {
                for (c, &v) in row.iter().enumerate() {
                    assert!(
                        (-1..=1).contains(&v),
                        "TernaryWeights: value {v} is not ternary"
                    );
                    let (at, shift) = code_position(layout, c);
                    let byte = &mut out[at];
                    *byte = (*byte & !(3 << shift)) | (((v + 1) as u8) << shift);
                }
            }
        }
        Self {
            rows: w.rows,
            cols: w.cols,
            row_bytes,
            scale: w.scale,
            layout,
            data: data.into(),
        }
    }

    /// Packs `w` into layout `i2s128`.
    ///
    /// # Panics
    /// As [`PackedTernary::pack`].
    pub fn pack_i2s128(w: &TernaryWeights) -> Self {
        Self::pack(w, PackedLayout::I2s128)
    }

    /// Takes bytes that are already in layout `i2s128` with no padding (`cols % 128 == 0`):
    /// the code bytes of a validated I2_S tensor are exactly that (see
    /// [`crate::formats::i2s_to_packed`]).
    pub(crate) fn from_unpadded_i2s128(
        data: Vec<u8>,
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Self {
        debug_assert!(cols.is_multiple_of(BLOCK) && data.len() == rows * cols / 4);
        Self {
            rows,
            cols,
            row_bytes: cols / BLOCK * BLOCK_BYTES,
            scale,
            layout: PackedLayout::I2s128,
            data: data.into(),
        }
    }

    /// Unpadded `i2s128` rows (`cols` a multiple of `layout`'s block, e.g. I2_S code bytes) transcoded into
    /// `layout`: a copy for `i2s128`; for `i2s256`, each pair of 32-byte blocks `A, B`
    /// becomes one 64-byte block by moving 2-bit fields within bytes (byte `k < 32` takes
    /// planes 0 and 2 of `A[k]` and `B[k]`, byte `32 + k` their planes 1 and 3), so a 2B4T
    /// model transcodes at memory speed instead of decoding a byte per weight.
    pub(crate) fn from_i2s128_rows(
        data: &[u8],
        rows: usize,
        cols: usize,
        scale: f32,
        layout: PackedLayout,
    ) -> Self {
        debug_assert!(cols.is_multiple_of(layout.block_cols()) && data.len() == rows * cols / 4);
        match layout {
            PackedLayout::I2s128 => Self::from_unpadded_i2s128(data.to_vec(), rows, cols, scale),
            PackedLayout::I2s256 => {
                let mut out = vec![0u8; data.len()];
                for (src, dst) in data.chunks_exact(64).zip(out.chunks_exact_mut(64)) {
                    let (a, b) = src.split_at(32);
                    let (lo, hi) = dst.split_at_mut(32);
                    for k in 0..32 {
                        let (a, b) = (a[k], b[k]);
                        lo[k] =
                            (a & 0xC0) | ((a & 0x0C) << 2) | ((b & 0xC0) >> 4) | ((b & 0x0C) >> 2);
                        hi[k] =
                            ((a & 0x30) << 2) | ((a & 0x03) << 4) | ((b & 0x30) >> 2) | (b & 0x03);
                    }
                }
                Self {
                    rows,
                    cols,
                    row_bytes: cols / 4,
                    scale,
                    layout,
                    data: out.into(),
                }
            }
        }
    }

    /// Moves the packed rows of `matrices` into one buffer advised for 2 MiB pages
    /// ([`crate::pages`]), each matrix keeping its own cache-line aligned slice, in order, and
    /// frees their former buffers as they are copied (so at most a few matrices are held
    /// twice). The copy runs on up to `threads` threads, each on a contiguous run of
    /// matrices. Values, shapes and results do not change.
    ///
    /// Why: a decoded token streams every matrix once, and from 4 KiB pages each 4 KiB of
    /// weights costs a TLB miss (a two-level page walk in a virtual machine). With the 2B4T
    /// shape's 210 ternary matrices (0.52 GB) in one such buffer instead of their own, decoding
    /// ran 12-16 % faster with the F16 head and 19-25 % with the Q8_0 head (docs/performance.md,
    /// "Machine D, sixth visit"); one matrix alone spans only a few 2 MiB pages, if any, hence
    /// one shared buffer.
    pub fn share_huge_pages(matrices: &mut [&mut PackedTernary], threads: usize) {
        const ALIGN: usize = 64;
        let spans: Vec<(usize, usize)> = matrices
            .iter()
            .scan(0usize, |end, m| {
                let at = end.next_multiple_of(ALIGN);
                *end = at + m.data.len();
                Some((at, m.data.len()))
            })
            .collect();
        let total = spans.last().map_or(0, |&(at, len)| at + len);
        let mut buf = crate::pages::zeroed_vec_in_huge_pages::<u8>(total + ALIGN);
        let base = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        {
            // Each matrix with its destination, then contiguous runs of them per thread.
            let mut rest = &mut buf[base..];
            let mut parts = Vec::with_capacity(matrices.len());
            let mut pos = 0;
            for (m, &(at, len)) in matrices.iter_mut().zip(&spans) {
                let (dst, tail) = std::mem::take(&mut rest)[at - pos..].split_at_mut(len);
                rest = tail;
                pos = at + len;
                parts.push((&mut **m, dst, at));
            }
            let threads = threads.max(1);
            let mut runs: Vec<Vec<(&mut PackedTernary, &mut [u8], usize)>> =
                (0..threads).map(|_| Vec::new()).collect();
            for part in parts {
                runs[part.2 * threads / total.max(1)].push(part);
            }
            std::thread::scope(|s| {
                for run in runs.into_iter().filter(|r| !r.is_empty()) {
                    s.spawn(move || {
                        for (m, dst, _) in run {
                            dst.copy_from_slice(&m.data);
                            m.data = Bytes::new();
                        }
                    });
                }
            });
        }
        let shared = Bytes::from(buf);
        for (m, &(at, len)) in matrices.iter_mut().zip(&spans) {
            m.data = shared.slice(base + at..base + at + len);
        }
    }

    /// The same weights with their scale multiplied by `factor` (a GGUF file's optional
    /// per-tensor `.scale`).
    pub fn scaled(mut self, factor: f32) -> Self {
        self.scale *= factor;
        self
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Input features.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Per-tensor weight scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }
    /// The packed layout.
    pub fn layout(&self) -> PackedLayout {
        self.layout
    }
    /// Id of the packed layout (reported in receipts).
    pub fn layout_id(&self) -> &'static str {
        self.layout.id()
    }
    /// Bytes of packed weights: what one GEMV streams from memory.
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
    /// Bytes per packed row (`ceil(cols / block_cols) * block_bytes`).
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }
    /// Number of blocks per row (of the layout's [`PackedLayout::block_cols`] columns).
    pub fn blocks(&self) -> usize {
        self.row_bytes / self.layout.block_bytes()
    }
    /// Packed bytes of row `r`.
    ///
    /// # Panics
    /// If `r >= rows`.
    #[inline]
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
    /// Code (`value + 1`) of element `(r, c)`; padding columns read as 1.
    #[inline]
    pub fn code(&self, r: usize, c: usize) -> u8 {
        let (at, shift) = code_position(self.layout, c);
        (self.row(r)[at] >> shift) & 3
    }
    /// Decodes back to canonical form (for tests and cross-checks).
    pub fn unpack(&self) -> TernaryWeights {
        let mut values = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            values.extend((0..self.cols).map(|c| self.code(r, c) as i8 - 1));
        }
        TernaryWeights {
            rows: self.rows,
            cols: self.cols,
            values,
            scale: self.scale,
        }
    }
}

/// Byte offset within a row and bit shift of column `c`'s code in `layout`.
#[inline]
pub(crate) fn code_position(layout: PackedLayout, c: usize) -> (usize, u32) {
    let (block_cols, block_bytes) = (layout.block_cols(), layout.block_bytes());
    let (b, within) = (c / block_cols, c % block_cols);
    let (j, k) = (within / block_bytes, within % block_bytes);
    (b * block_bytes + k, 6 - 2 * j as u32)
}

/// A mutable view of rows `start..end` of every token of an output matrix `y: [n][stride]`.
///
/// Kernels split output rows across threads, but with `n > 1` tokens one thread's rows are
/// `n` separate slices of `y`. This view hands them out safely: views made by
/// [`OutRows::split_at`] cover disjoint rows, and [`OutRows::token`] borrows `&mut self`.
pub struct OutRows<'a> {
    ptr: NonNull<f32>,
    n: usize,
    stride: usize,
    rows: Range<usize>,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: an `OutRows` is a unique borrow of disjoint parts of a `&mut [f32]`.
unsafe impl Send for OutRows<'_> {}

impl<'a> OutRows<'a> {
    /// Views all of `y: [n][stride]`.
    ///
    /// # Panics
    /// If `y.len() != n * stride`.
    pub fn new(y: &'a mut [f32], n: usize, stride: usize) -> Self {
        assert_eq!(y.len(), n * stride, "output length != n * rows");
        Self {
            ptr: NonNull::from(y).cast(),
            n,
            stride,
            rows: 0..stride,
            _borrow: PhantomData,
        }
    }
    /// Tokens (`n`).
    pub fn n(&self) -> usize {
        self.n
    }
    /// Output rows this view covers.
    pub fn rows(&self) -> Range<usize> {
        self.rows.clone()
    }
    /// Full row count of the matrix (`stride`).
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// `y[t][rows]` for token `t`.
    ///
    /// # Panics
    /// If `t >= n`.
    #[inline]
    pub fn token(&mut self, t: usize) -> &mut [f32] {
        assert!(t < self.n, "token {t} out of range (n = {})", self.n);
        // SAFETY: `t < n` and `rows` lies in `0..stride`, so the range is inside the
        // borrowed slice; this view is the only one covering these rows, and the returned
        // slice borrows `self` mutably.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(t * self.stride + self.rows.start),
                self.rows.len(),
            )
        }
    }
    /// Splits into rows `start..mid` and `mid..end` (`mid` is absolute, clamped).
    pub fn split_at(self, mid: usize) -> (OutRows<'a>, OutRows<'a>) {
        let mid = mid.clamp(self.rows.start, self.rows.end);
        let a = OutRows {
            ptr: self.ptr,
            n: self.n,
            stride: self.stride,
            rows: self.rows.start..mid,
            _borrow: PhantomData,
        };
        let b = OutRows {
            ptr: self.ptr,
            n: self.n,
            stride: self.stride,
            rows: mid..self.rows.end,
            _borrow: PhantomData,
        };
        (a, b)
    }
}

// SAFETY: through `&OutRows` nothing can be written (`token` needs `&mut`); the only
// shared-access writer is the crate-private, unsafe `sub`.
unsafe impl Sync for OutRows<'_> {}

impl OutRows<'_> {
    /// A view of `rows` (absolute, inside this view's rows) sharing this view's borrow.
    ///
    /// # Safety
    /// Views obtained this way that are alive at the same time must cover disjoint rows,
    /// and `self` must not be written through meanwhile.
    pub(crate) unsafe fn sub(&self, rows: Range<usize>) -> OutRows<'_> {
        assert!(
            rows.start <= rows.end && rows.start >= self.rows.start && rows.end <= self.rows.end,
            "sub-view rows out of range"
        );
        OutRows {
            ptr: self.ptr,
            n: self.n,
            stride: self.stride,
            rows,
            _borrow: PhantomData,
        }
    }
}
