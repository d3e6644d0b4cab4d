//! Decodes the real bitnet.cpp I2_S tensors of the tiny-bitnet fixture and compares them
//! with the Hugging Face packed checkpoint of the same model.
//!
//! There is no GGUF crate in the workspace for this crate to use (bitnet-gguf depends on
//! nothing of ours and we do not depend on it), so a minimal GGUF v3 header walker lives
//! here, in the test only.

use bitnet_kernels::{Kernels, TernaryWeights, available, formats};
use std::collections::HashMap;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/tiny-bitnet");

struct Tensor {
    dims: Vec<u64>,
    ggml_type: u32,
    offset: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take(4).try_into().unwrap())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().unwrap())
    }
    fn string(&mut self) -> String {
        let n = self.u64() as usize;
        String::from_utf8(self.take(n).to_vec()).unwrap()
    }
    /// Skips a value of GGUF type `t`, returning it when it is an integer.
    fn value(&mut self, t: u32) -> Option<u64> {
        match t {
            0 | 1 | 7 => Some(u64::from(self.take(1)[0])),
            2 | 3 => Some(u64::from(u16::from_le_bytes(
                self.take(2).try_into().unwrap(),
            ))),
            4 | 5 => Some(u64::from(self.u32())),
            6 => {
                self.take(4);
                None
            }
            8 => {
                self.string();
                None
            }
            9 => {
                let et = self.u32();
                let n = self.u64();
                for _ in 0..n {
                    self.value(et);
                }
                None
            }
            10 | 11 => Some(self.u64()),
            12 => {
                self.take(8);
                None
            }
            other => panic!("unknown GGUF value type {other}"),
        }
    }
}

/// Returns the tensor infos and the absolute offset of the data section.
fn parse_gguf(b: &[u8]) -> (HashMap<String, Tensor>, usize) {
    let mut r = Reader { b, pos: 0 };
    assert_eq!(r.take(4), b"GGUF");
    assert_eq!(r.u32(), 3, "GGUF version");
    let n_tensors = r.u64();
    let n_kv = r.u64();
    let mut alignment = 32u64;
    for _ in 0..n_kv {
        let key = r.string();
        let t = r.u32();
        let v = r.value(t);
        if key == "general.alignment" {
            alignment = v.unwrap();
        }
    }
    let mut tensors = HashMap::new();
    for _ in 0..n_tensors {
        let name = r.string();
        let nd = r.u32();
        let dims = (0..nd).map(|_| r.u64()).collect();
        let ggml_type = r.u32();
        let offset = r.u64();
        tensors.insert(
            name,
            Tensor {
                dims,
                ggml_type,
                offset,
            },
        );
    }
    let data = (r.pos as u64).div_ceil(alignment) * alignment;
    (tensors, data as usize)
}

/// Unpacks an HF packed U8 `[out/4, in]` tensor: bits `2i..2i+1` of byte `[r, c]` hold the
/// code of row `i * (out/4) + r`, column `c`; value = code - 1.
fn unpack_hf(bytes: &[u8], out4: usize, cols: usize) -> Vec<i8> {
    let rows = out4 * 4;
    let mut v = vec![0i8; rows * cols];
    for r in 0..out4 {
        for c in 0..cols {
            let byte = bytes[r * cols + c];
            for i in 0..4 {
                v[(i * out4 + r) * cols + c] = ((byte >> (2 * i)) & 3) as i8 - 1;
            }
        }
    }
    v
}

fn bf16_to_f32(b: &[u8]) -> f32 {
    f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
}

#[test]
fn i2s_fixture_matches_hf_packed_checkpoint() {
    let gguf = std::fs::read(format!("{FIXTURES}/i2s/model-i2_s.gguf")).unwrap();
    let st_bytes = std::fs::read(format!("{FIXTURES}/packed/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let (tensors, data) = parse_gguf(&gguf);
    let pairs = [
        ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj"),
        ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj"),
        ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj"),
        (
            "blk.0.attn_output.weight",
            "model.layers.0.self_attn.o_proj",
        ),
        ("blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj"),
        ("blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj"),
        ("blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj"),
        ("blk.3.ffn_down.weight", "model.layers.3.mlp.down_proj"),
    ];
    for (gname, hf) in pairs {
        let t = &tensors[gname];
        assert_eq!(t.ggml_type, 36, "{gname} is not I2_S");
        let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
        let start = data + t.offset as usize;
        let bytes = &gguf[start..start + formats::i2s_size(rows, cols)];
        let w = formats::decode_i2s(bytes, rows, cols).unwrap();

        let packed = st.tensor(&format!("{hf}.weight")).unwrap();
        assert_eq!(packed.shape(), [rows / 4, cols], "{hf}");
        let expected = unpack_hf(packed.data(), rows / 4, cols);
        let scale = bf16_to_f32(st.tensor(&format!("{hf}.weight_scale")).unwrap().data());
        assert_eq!(w.scale, scale, "{gname}: I2_S scale vs bf16 weight_scale");
        let diff = w
            .values
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            diff, 0,
            "{gname} ({rows}x{cols}): {diff} values differ from {hf}"
        );
        // The nonzero fraction is a sanity check that the comparison is not vacuous.
        let nonzero = w.values.iter().filter(|&&v| v != 0).count();
        assert!(
            nonzero > rows * cols / 4,
            "{gname}: only {nonzero} nonzero values"
        );

        // Re-encoding reproduces the codes and scale (the 28 trailer bytes are stale
        // garbage in the file, zeros in ours).
        let re = formats::encode_i2s(&w).unwrap();
        assert_eq!(
            re[..rows * cols / 4 + 4],
            bytes[..rows * cols / 4 + 4],
            "{gname}"
        );
        assert!(re[rows * cols / 4 + 4..].iter().all(|&b| b == 0));

        // Packing for the kernels keeps the values.
        for ops in available() {
            let p = Kernels::with_backend(ops, 1).pack(&w);
            assert_eq!(
                p.unpack(),
                TernaryWeights {
                    rows,
                    cols,
                    values: expected.clone(),
                    scale
                }
            );
        }
    }
}
