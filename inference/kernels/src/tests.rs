//! The kernels against a plain dequantize-then-multiply reference in f64 (within the
//! activation quantization error) and against candle's `QMatMul` (within the same bound),
//! every kernel version against the scalar one bit for bit, and a batch against its rows
//! one by one, over random shapes including row counts that are not multiples of sixteen.

use super::quant::BLOCK;
use super::*;
use candle_core::quantized::QTensor;
use candle_core::{Module, Tensor};
use proptest::prelude::*;

fn random(len: usize, seed: u64) -> Vec<f32> {
    // A small xorshift so the values are reproducible from the proptest seed.
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

fn quantized(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> QMatMul {
    let w = Tensor::from_vec(random(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    QMatMul::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap()
}

fn candle_product(w: &QMatMul, x: &[f32], m: usize, cols: usize) -> Vec<f32> {
    let x = Tensor::from_vec(x.to_vec(), (m, cols), &Device::Cpu).unwrap();
    w.forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `x · Wᵀ` in f64 over the dequantized weights, with a bound on the error that quantizing
/// the activations to 8 bits per block may cause.
fn reference(w: &QMatMul, x: &[f32], m: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    let w = widen(w).unwrap();
    let rows = w.len() / cols;
    let mut exact = Vec::new();
    let mut bound = Vec::new();
    for x in x.chunks_exact(cols) {
        for w in w.chunks_exact(cols) {
            exact.push(w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum());
            let mut tol = 1e-5;
            for (wb, xb) in w.chunks_exact(BLOCK).zip(x.chunks_exact(BLOCK)) {
                let step = xb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                let mass: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                let scale: f64 = wb.iter().zip(xb).map(|(a, b)| (a * b).abs() as f64).sum();
                tol += 0.6 * step * mass + 4e-3 * scale;
            }
            bound.push(tol);
        }
    }
    assert_eq!(exact.len(), m * rows);
    (exact, bound)
}

fn check(dtype: GgmlDType, rows: usize, blocks: usize, m: usize, seed: u64) {
    let cols = blocks * BLOCK;
    let w = quantized(rows, cols, dtype, seed);
    let ours = QuantMatrix::new(&w).unwrap();
    let x = random(m * cols, seed ^ 0xABCD);
    let mut out = vec![0f32; m * rows];
    ours.matmul(&x, m, &mut out);
    let (exact, bound) = reference(&w, &x, m, cols);
    for ((&o, &e), &b) in out.iter().zip(&exact).zip(&bound) {
        assert!(
            (o as f64 - e).abs() <= b,
            "{dtype:?} {rows}x{cols} m={m}: {o} vs {e} (bound {b})"
        );
    }
    // Row by row gives the same bits as the batch.
    for (i, x) in x.chunks_exact(cols).enumerate() {
        let mut one = vec![0f32; rows];
        ours.matmul(x, 1, &mut one);
        assert_eq!(one, out[i * rows..(i + 1) * rows], "row {i} differs alone");
    }
    // Every kernel version this CPU runs gives the scalar version's bits.
    for isa in dot::available() {
        let mut theirs = vec![0f32; m * rows];
        ours.matmul_with(isa, &x, m, &mut theirs);
        assert_eq!(
            theirs,
            out_with(&ours, dot::Isa::Scalar, &x, m),
            "{isa:?} vs scalar"
        );
    }
    // candle's Q4_1 kernel wants an even number of blocks per row.
    if dtype != GgmlDType::Q4_1 || blocks.is_multiple_of(2) {
        let candle = candle_product(&w, &x, m, cols);
        for ((&o, &c), &b) in out.iter().zip(&candle).zip(&bound) {
            assert!(
                (o - c).abs() as f64 <= 2.0 * b,
                "{dtype:?} {o} vs candle {c}"
            );
        }
    }
}

fn out_with(w: &QuantMatrix, isa: dot::Isa, x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * w.rows()];
    w.matmul_with(isa, x, m, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn q4_1_products_match_candle_and_the_reference(
        rows in 1usize..50, blocks in 1usize..7, m in 1usize..7, seed in any::<u64>()
    ) {
        check(GgmlDType::Q4_1, rows, blocks, m, seed);
    }

    #[test]
    fn q8_0_products_match_candle_and_the_reference(
        rows in 1usize..50, blocks in 1usize..7, m in 1usize..7, seed in any::<u64>()
    ) {
        check(GgmlDType::Q8_0, rows, blocks, m, seed);
    }

    #[test]
    fn widened_formats_match_the_reference(
        rows in 1usize..21, blocks in 1usize..4, m in 1usize..4, seed in any::<u64>()
    ) {
        // Q4_0 has no fused kernel here: it is widened to f32 at load.
        let cols = blocks * BLOCK;
        let w = quantized(rows, cols, GgmlDType::Q4_0, seed);
        let ours = QuantMatrix::new(&w).unwrap();
        let x = random(m * cols, seed ^ 7);
        let mut out = vec![0f32; m * rows];
        ours.matmul(&x, m, &mut out);
        let w = widen(&w).unwrap();
        for (i, x) in x.chunks_exact(cols).enumerate() {
            for (r, w) in w.chunks_exact(cols).enumerate() {
                let e: f64 = w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum();
                prop_assert!((out[i * rows + r] as f64 - e).abs() <= 1e-4);
            }
        }
    }
}

#[test]
fn stacked_matrices_equal_their_parts() {
    let cols = 2 * BLOCK;
    let parts = [
        quantized(6, cols, GgmlDType::Q4_1, 1),
        quantized(3, cols, GgmlDType::Q4_1, 2),
        quantized(5, cols, GgmlDType::Q4_1, 3),
    ];
    let stacked = QuantMatrix::stacked(&parts.iter().collect::<Vec<_>>()).unwrap();
    let x = random(2 * cols, 9);
    let mut all = vec![0f32; 2 * 14];
    stacked.matmul(&x, 2, &mut all);
    let mut offset = 0;
    for p in &parts {
        let part = QuantMatrix::new(p).unwrap();
        let rows = part.rows();
        let want = out_with(&part, dot::best(), &x, 2);
        for i in 0..2 {
            assert_eq!(
                all[i * 14 + offset..i * 14 + offset + rows],
                want[i * rows..(i + 1) * rows]
            );
        }
        offset += rows;
    }
    // Mixed formats fall back to f32 and still compute the same product closely.
    let mixed = [
        quantized(4, cols, GgmlDType::Q4_1, 4),
        quantized(4, cols, GgmlDType::Q8_0, 5),
    ];
    let m = QuantMatrix::stacked(&mixed.iter().collect::<Vec<_>>()).unwrap();
    assert!(matches!(m.data, Data::F32(_)));
    assert_eq!(m.rows(), 8);
}

#[test]
fn malformed_matrices_are_errors_not_panics() {
    assert!(quant::q4_1_groups(&[0u8; 19], 1, 32).is_none());
    assert!(quant::q8_0_groups(&[0u8; 34], 1, 33).is_none());
}
