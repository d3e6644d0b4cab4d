//! Storage formats of ternary tensors: [`bitnet_formats`] re-exported (so
//! `bitnet_kernels::formats::*` paths keep working), plus [`i2s_to_packed`], the load-time
//! fast path from I2_S bytes into the kernels' layout, which needs [`PackedTernary`] and so
//! lives here.

pub use bitnet_formats::*;

use crate::packed::{PackedLayout, PackedTernary};

/// I2_S bytes straight into the kernels' `layout`, when the rows need no padding in it
/// (`cols` a multiple of its block, 128 or 256 columns).
///
/// Rows then start on I2_S block boundaries and the code bytes are byte-identical to layout
/// `i2s128` (see [`PackedTernary`]), or a within-byte transcode away from `i2s256`, so
/// loading is one pass plus a scan for the invalid code 3, instead of decoding to a byte
/// per weight and packing again: for a 2B4T-sized model that is the difference between a
/// load of seconds and one of a fraction of a second. Returns `Ok(None)` when the rows would
/// need padding (use [`decode_i2s`] and pack).
///
/// # Errors
/// As [`parse_i2s`]: wrong size, invalid code 3, non-finite scale.
pub fn i2s_to_packed(
    bytes: &[u8],
    rows: usize,
    cols: usize,
    layout: PackedLayout,
) -> Result<Option<PackedTernary>, FormatError> {
    if !cols.is_multiple_of(layout.block_cols()) {
        return Ok(None);
    }
    let t = parse_i2s(bytes, rows, cols)?;
    let codes: &[u8] = bytemuck::cast_slice(t.blocks);
    Ok(Some(PackedTernary::from_i2s128_rows(
        codes, rows, cols, t.scale, layout,
    )))
}
