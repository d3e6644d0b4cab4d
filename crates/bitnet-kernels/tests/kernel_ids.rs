//! Receipts name the code that ran. For every backend this CPU has, each op's code returns
//! the id the backend declares for it, the dispatch counters record exactly those ids, and
//! the known fallbacks (ops a backend has no SIMD version of) are named as fallbacks.

use bitnet_kernels::{
    Backend, CausalTile, DenseMatmul, Kernels, KvData, KvKeys, KvRows, OpKind, OutRows, Q4KMatmul,
    Q4KMatrix, Q6KMatmul, Q6KMatrix, Q8Activations, Q8KActivations, Q8Matmul, Q8Matrix, ShapeError,
    TernaryF32Matmul, TernaryMatmul, TernaryWeights, available, by_id, causal_work_len,
};
use half::{bf16, f16};

const ROWS: usize = 8;
const COLS: usize = 64;
/// K-quant rows are whole blocks of 256.
const COLS_K: usize = 256;

struct Data {
    w: TernaryWeights,
    x: Vec<f32>,
    wf16: Vec<f16>,
    wbf16: Vec<bf16>,
    wf32: Vec<f32>,
    q8: Q8Matrix,
    q6k: Q6KMatrix,
    q4k: Q4KMatrix,
    xk: Vec<f32>,
}

fn data() -> Data {
    let w = TernaryWeights {
        rows: ROWS,
        cols: COLS,
        values: (0..ROWS * COLS).map(|i| (i % 3) as i8 - 1).collect(),
        scale: 0.5,
    };
    let x: Vec<f32> = (0..COLS).map(|i| (i % 7) as f32 / 7.0 - 0.4).collect();
    let wf32: Vec<f32> = (0..ROWS * COLS).map(|i| (i % 5) as f32 / 5.0).collect();
    let wf16 = wf32.iter().map(|&v| f16::from_f32(v)).collect();
    let wbf16 = wf32.iter().map(|&v| bf16::from_f32(v)).collect();
    let q8 = Q8Matrix::quantize(ROWS, COLS, 1, |r, buf| {
        buf.copy_from_slice(&wf32[r * COLS..(r + 1) * COLS])
    })
    .unwrap();
    let fill = |r: usize, buf: &mut [f32]| {
        for (c, v) in buf.iter_mut().enumerate() {
            *v = ((r * COLS_K + c) % 9) as f32 / 9.0 - 0.5;
        }
    };
    let q6k = Q6KMatrix::quantize(ROWS, COLS_K, 1, fill).unwrap();
    let q4k = Q4KMatrix::quantize(ROWS, COLS_K, 1, fill).unwrap();
    let xk = (0..COLS_K).map(|i| (i % 11) as f32 / 11.0 - 0.3).collect();
    Data {
        w,
        x,
        wf16,
        wbf16,
        wf32,
        q8,
        q6k,
        q4k,
        xk,
    }
}

/// Calls every op of `b` directly (one token) and returns the id each returned.
fn ran(b: &'static dyn Backend, d: &Data) -> Vec<(OpKind, &'static str)> {
    let p = Kernels::with_backend(b, 1).pack(&d.w);
    let mut q = vec![0i8; COLS];
    let mut s = [0f32];
    let quantize = b.quantize_rows(&d.x, COLS, &mut q, &mut s);
    let mut y = vec![0f32; ROWS];
    let mut out = OutRows::new(&mut y, 1, ROWS);
    let ternary = b.ternary_rows(&TernaryMatmul::new(&p, &q, &s, 1).unwrap(), &mut out);
    let f32t = b.ternary_f32_rows(&TernaryF32Matmul::new(&p, &d.x, 1).unwrap(), &mut out);
    let dense16 = DenseMatmul::new(&d.wf16, ROWS, COLS, &d.x, 1).unwrap();
    let f16 = b.f16_rows(&dense16, &mut out);
    let bf16 = b.bf16_rows(
        &DenseMatmul::new(&d.wbf16, ROWS, COLS, &d.x, 1).unwrap(),
        &mut out,
    );
    let dense32 = DenseMatmul::new(&d.wf32, ROWS, COLS, &d.x, 1).unwrap();
    let f32 = b.f32_rows(&dense32, &mut out);
    let mut act = Q8Activations::new(1, COLS);
    act.quantize(&d.x, 1);
    let q8 = b.q8_rows(&Q8Matmul::new(&d.q8, &act).unwrap(), &mut out);
    let mut act = Q8KActivations::new(1, COLS_K);
    act.quantize(&d.xk, 1);
    let q6k = b.q6k_rows(&Q6KMatmul::new(&d.q6k, &act).unwrap(), &mut out);
    let q4k = b.q4k_rows(&Q4KMatmul::new(&d.q4k, &act).unwrap(), &mut out);
    let keys = vec![0f32; KvKeys::storage_len(COLS, ROWS).unwrap()];
    let keys = KvKeys::new(KvData::F32(&keys), COLS, ROWS);
    let kv = KvRows::new(KvData::F32(&d.wf32), COLS, 0, COLS, ROWS);
    let mut work = vec![0f32; causal_work_len(ROWS, 1, COLS)];
    let tile = CausalTile::new(keys, kv, &d.x, 1, 1.0);
    let kv_causal = b.kv_causal(&tile, &mut work, &mut vec![0f32; COLS]);
    vec![
        (OpKind::Quantize, quantize),
        (OpKind::Ternary, ternary),
        (OpKind::TernaryF32, f32t),
        (OpKind::F16, f16),
        (OpKind::BF16, bf16),
        (OpKind::F32, f32),
        (OpKind::Q8_0, q8),
        (OpKind::Q6K, q6k),
        (OpKind::Q4K, q4k),
        (OpKind::KvCausal, kv_causal),
    ]
}

/// Runs every op once through `k` (one token each).
fn dispatch_each_op_once(k: &Kernels, d: &Data) {
    let p = k.pack(&d.w);
    let mut q = vec![0i8; COLS];
    let mut s = [0f32];
    let mut y = vec![0f32; ROWS];
    k.quantize_rows(&d.x, 1, &mut q, &mut s);
    k.ternary_matmul(&p, &q, &s, 1, &mut y);
    k.ternary_matmul_f32(&p, &d.x, 1, &mut y);
    k.f16_matmul(&d.wf16, ROWS, COLS, &d.x, 1, &mut y);
    k.bf16_matmul(&d.wbf16, ROWS, COLS, &d.x, 1, &mut y);
    k.f32_matmul(&d.wf32, ROWS, COLS, &d.x, 1, &mut y);
    let mut act = Q8Activations::new(1, COLS);
    k.q8_matmul(&d.q8, &d.x, 1, &mut act, &mut y);
    let mut act = Q8KActivations::new(1, COLS_K);
    k.kquant_matmul(&d.q6k, &d.xk, 1, &mut act, &mut y);
    k.kquant_matmul(&d.q4k, &d.xk, 1, &mut act, &mut y);
    let keys = vec![0f32; KvKeys::storage_len(COLS, ROWS).unwrap()];
    let keys = KvKeys::new(KvData::F32(&keys), COLS, ROWS);
    let kv = KvRows::new(KvData::F32(&d.wf32), COLS, 0, COLS, ROWS);
    let mut work = vec![0f32; causal_work_len(ROWS, 1, COLS)];
    k.kv_causal(&keys, &kv, &d.x, 1, 1.0, &mut work, &mut vec![0f32; COLS]);
}

#[test]
fn every_op_runs_the_kernel_its_backend_declares() {
    let d = data();
    for b in available() {
        for (op, id) in ran(b, &d) {
            assert_eq!(id, b.kernel_id(op), "{}: {op:?}", b.id());
            // `<format>/<isa>`, the format fixed by the op, the ISA a real one.
            let (format, isa) = id.split_once('/').unwrap();
            let expected = match op {
                OpKind::Quantize => "act_i8",
                OpKind::Ternary | OpKind::TernaryF32 => "i2s",
                OpKind::F16 => "f16",
                OpKind::BF16 => "bf16",
                OpKind::F32 => "f32",
                OpKind::Q8_0 => "q8_0",
                OpKind::Q6K => "q6_k",
                OpKind::Q4K => "q4_k",
                OpKind::KvCausal => "kv",
            };
            assert_eq!(format, expected, "{}: {op:?} -> {id}", b.id());
            assert!(
                available().iter().any(|o| o.isa() == isa),
                "{}: {op:?} -> {id}: no backend has ISA {isa}",
                b.id()
            );
        }
        // The receipt's names are exactly the declared ids.
        let k = Kernels::with_backend(b, 1);
        dispatch_each_op_once(&k, &d);
        let name = |op: OpKind, suffix: &str| (format!("{}:{suffix}", b.kernel_id(op)), 1);
        assert_eq!(
            k.dispatch_counts(),
            vec![
                name(OpKind::Quantize, "quantize"),
                name(OpKind::Ternary, "gemv"),
                name(OpKind::TernaryF32, "f32"),
                name(OpKind::F16, "gemv"),
                name(OpKind::BF16, "gemv"),
                name(OpKind::F32, "gemv"),
                name(OpKind::Q8_0, "gemv"),
                name(OpKind::Q6K, "gemv"),
                name(OpKind::Q4K, "gemv"),
                name(OpKind::KvCausal, "causal"),
            ],
            "{}",
            b.id()
        );
    }
}

#[test]
fn the_scalar_backend_runs_only_scalar_code() {
    let d = data();
    let scalar = by_id("i2s/scalar").unwrap();
    for (op, id) in ran(scalar, &d) {
        assert!(id.ends_with("/scalar"), "{op:?} -> {id}");
    }
}

#[test]
fn fallbacks_are_reported_as_fallbacks() {
    let d = data();
    let report = |id: &str| {
        let k = Kernels::with_backend(by_id(id).unwrap(), 1);
        dispatch_each_op_once(&k, &d);
        k.dispatch_counts()
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    #[cfg(target_arch = "x86_64")]
    {
        if by_id("i2s/avx2").is_some() {
            // AVX2 has no f32-activation ternary kernel: the scalar one runs and is named.
            assert_eq!(
                report("i2s/avx2"),
                [
                    "act_i8/avx2:quantize",
                    "i2s/avx2:gemv",
                    "i2s/scalar:f32",
                    "f16/avx2:gemv",
                    "bf16/avx2:gemv",
                    "f32/avx2:gemv",
                    "q8_0/avx2:gemv",
                    "q6_k/avx2:gemv",
                    "q4_k/avx2:gemv",
                    "kv/avx2:causal"
                ]
            );
        }
        if by_id("i2s/avx512vnni").is_some() {
            // VNNI has its own ternary, float-head and attention kernels; the rest is AVX2 (or scalar)
            // code.
            assert_eq!(
                report("i2s/avx512vnni"),
                [
                    "act_i8/avx2:quantize",
                    "i2s/avx512vnni:gemv",
                    "i2s/scalar:f32",
                    "f16/avx512vnni:gemv",
                    "bf16/avx512vnni:gemv",
                    "f32/avx512vnni:gemv",
                    "q8_0/avx512vnni:gemv",
                    "q6_k/avx512vnni:gemv",
                    "q4_k/avx2:gemv",
                    "kv/avx512vnni:causal"
                ]
            );
        }
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(
        report("i2s/neon"),
        [
            "act_i8/scalar:quantize",
            "i2s/neon:gemv",
            "i2s/scalar:f32",
            "f16/neon:gemv",
            "bf16/neon:gemv",
            "f32/neon:gemv",
            "q8_0/neon:gemv",
            "q6_k/neon:gemv",
            "q4_k/neon:gemv",
            "kv/scalar:causal"
        ]
    );
}

#[test]
fn operands_are_checked_once_with_errors_naming_the_operand() {
    let d = data();
    let p = Kernels::new(1).pack(&d.w);
    let q = vec![0i8; 2 * COLS];
    let e = TernaryMatmul::new(&p, &q[..COLS + 1], &[1.0], 1).unwrap_err();
    assert_eq!(
        e,
        ShapeError {
            op: "ternary_matmul",
            operand: "activations",
            rule: "n * cols",
            expected: COLS,
            actual: COLS + 1
        }
    );
    assert_eq!(
        e.to_string(),
        "shape mismatch in ternary_matmul: activations holds 65 values, expected 64 (n * cols)"
    );
    let e = TernaryMatmul::new(&p, &q, &[1.0], 2).unwrap_err();
    assert_eq!((e.operand, e.expected, e.actual), ("scales", 2, 1));
    let e = DenseMatmul::new(&d.wf32[1..], ROWS, COLS, &d.x, 1).unwrap_err();
    assert_eq!(e.operand, "weights");
    let e = DenseMatmul::new(&d.wf32, ROWS, COLS, &d.x, usize::MAX).unwrap_err();
    assert_eq!(e.operand, "activations");
    let act = Q8Activations::new(1, 32);
    assert_eq!(
        Q8Matmul::new(&d.q8, &act).unwrap_err().operand,
        "activation columns"
    );

    // `Kernels` panics with the same message.
    let k = Kernels::new(1);
    let mut y = vec![0f32; ROWS];
    let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        k.ternary_matmul(&p, &q[..COLS - 1], &[1.0], 1, &mut y)
    }))
    .unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("shape mismatch in ternary_matmul: activations holds 63 values"),
        "{msg}"
    );
    let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        k.f16_matmul(&d.wf16, ROWS, COLS, &d.x, 1, &mut y[..ROWS - 1])
    }))
    .unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(
        msg.contains("shape mismatch in f16_matmul: output holds 7 values, expected 8"),
        "{msg}"
    );
}
