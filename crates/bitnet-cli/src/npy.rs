//! Writes float32 `.npy` files (NumPy format 1.0). Written by hand: the format is a magic, a
//! padded Python-dict header and raw little-endian data, about 20 lines, which does not
//! justify a dependency (the `npyz`/`ndarray-npy` crates bring ndarray or generic machinery
//! for far more than this).

use std::io::{self, Write};

/// Writes `data` (row-major, C order) with `shape` as a `<f4` array.
pub fn write_f32<W: Write>(mut w: W, shape: &[usize], data: &[f32]) -> io::Result<()> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic (6) + version (2) + header length (2) + header, padded with spaces and ended by
    // '\n' to a multiple of 64 bytes (numpy pads to 64 since 1.x; readers accept any 16).
    let unpadded = 10 + header.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    header.push_str(&" ".repeat(total - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy header too long"))?;
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&header_len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    let mut buf = Vec::with_capacity(data.len().min(1 << 20) * 4);
    for chunk in data.chunks(1 << 20) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        w.write_all(&buf)?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_data_follows() {
        let mut out = Vec::new();
        write_f32(&mut out, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.5]).unwrap();
        assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([out[8], out[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&out[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        let data = &out[10 + hlen..];
        assert_eq!(data.len(), 24);
        assert_eq!(f32::from_le_bytes(data[20..24].try_into().unwrap()), 5.5);
    }
}
