//! Reading float32 C-order `.npy` files (versions 1 and 2 of the format).

use std::path::Path;

/// Reads a little-endian float32 C-order `.npy` file: `(shape, data)`.
///
/// # Panics
/// On anything else, naming the file.
pub fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let name = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(bytes.len() >= 10, "{name}: too short for a .npy file");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{name}: not a .npy file");
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen])
        .unwrap_or_else(|e| panic!("{name}: header: {e}"));
    assert!(header.contains("'<f4'"), "{name}: not float32: {header}");
    assert!(
        header.contains("'fortran_order': False"),
        "{name}: not C order: {header}"
    );
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap_or_else(|| panic!("{name}: no shape: {header}"));
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("{name}: shape {s}: {e}"))
        })
        .collect();
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "{name}: shape {shape:?} does not match the data"
    );
    (shape, data)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_numpy_v1_file() {
        let dir = std::env::temp_dir().join(format!("npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut header = header.to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, -6.5] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let (shape, data) = super::read_f32(&path);
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
