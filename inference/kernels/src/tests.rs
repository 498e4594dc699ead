//! The kernels of every format against a plain dequantize-then-multiply reference in f64
//! (candle's own dequantization, within the bound the activation quantization allows;
//! see [`reference`]) and against candle's `QMatMul` (which quantizes the activations as
//! we do: within `1e-6` of `Σ|w·x|`); every
//! kernel version against the scalar one bit for bit; a batch of `m = 1..=8` rows against
//! its rows one by one and against other batch sizes; and the same product under thread
//! pools of one to three threads, over random shapes including row counts that are not
//! multiples of sixteen and (for the 32-value formats) widths that are not multiples of
//! 256. The activation quantizers are compared with candle's blocks byte for byte.

use super::quant::{BLOCK, SUPER};
use super::*;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use proptest::prelude::*;
use std::sync::Arc;

/// Quantized as a GGUF file holds it (F16 and BF16 too stay in their format, as the
/// loader keeps them).
fn quantized(rows: usize, cols: usize, dtype: GgmlDType, seed: u64) -> QMatMul {
    let w = Tensor::from_vec(sample_values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
    QMatMul::QTensor(Arc::new(QTensor::quantize(&w, dtype).unwrap()))
}

fn dequantized(w: &QMatMul) -> Vec<f32> {
    match w {
        QMatMul::QTensor(q) => q.dequantize(&Device::Cpu).unwrap(),
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.clone(),
    }
    .to_dtype(candle_core::DType::F32)
    .unwrap()
    .flatten_all()
    .unwrap()
    .to_vec1()
    .unwrap()
}

/// candle's product (`QMatMul` made the way candle makes it from the tensor).
fn candle_product(w: &QMatMul, x: &[f32], m: usize, cols: usize) -> Vec<f32> {
    let w = match w {
        QMatMul::QTensor(q) => QMatMul::from_arc(q.clone()).unwrap(),
        other => other.clone(),
    };
    let x = Tensor::from_vec(x.to_vec(), (m, cols), &Device::Cpu).unwrap();
    w.forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Values per activation quantization block of `dtype`'s kernel (`None`: f32
/// activations).
fn act_block(dtype: GgmlDType) -> Option<usize> {
    match dtype {
        GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K => Some(SUPER),
        GgmlDType::F16 | GgmlDType::BF16 | GgmlDType::F32 => None,
        _ => Some(BLOCK),
    }
}

/// `x · Wᵀ` in f64 over candle's dequantized weights, with a bound on the error: per
/// activation block, half a quantization step (`amax / 127`, a little more for the f16
/// rounding of the scale) times the block's weight mass, plus `4e-3` of the block's
/// `Σ|w·x|` for the f16 roundings of scales and offsets and the f32 sums; for f32
/// activations only the last term, at `1e-5`. Also returns each output's `Σ|w·x|`.
fn reference(dtype: GgmlDType, w: &QMatMul, x: &[f32], cols: usize) -> [Vec<f64>; 3] {
    let w = dequantized(w);
    let (block, rel) = match act_block(dtype) {
        Some(b) => (b, 4e-3),
        None => (cols, 1e-5),
    };
    let [mut exact, mut bound, mut size] = [Vec::new(), Vec::new(), Vec::new()];
    for x in x.chunks_exact(cols) {
        for w in w.chunks_exact(cols) {
            exact.push(w.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum());
            size.push(
                w.iter()
                    .zip(x)
                    .map(|(&a, &b)| (a as f64 * b as f64).abs())
                    .sum(),
            );
            let mut tol = 1e-5;
            for (wb, xb) in w.chunks_exact(block).zip(x.chunks_exact(block)) {
                let step = xb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                let mass: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                let scale: f64 = wb.iter().zip(xb).map(|(a, b)| (a * b).abs() as f64).sum();
                if act_block(dtype).is_some() {
                    tol += 0.6 * step * mass;
                }
                tol += rel * scale;
            }
            bound.push(tol);
        }
    }
    [exact, bound, size]
}

fn out_with(w: &QuantMatrix, isa: dot::Isa, x: &[f32], m: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * w.rows()];
    w.matmul_with(isa, x, m, &mut out);
    out
}

/// The product in a pool of `threads` threads (so the work is split differently).
fn in_threads(w: &QuantMatrix, isa: dot::Isa, x: &[f32], m: usize, threads: usize) -> Vec<f32> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| out_with(w, isa, x, m))
}

/// Checks one format on a `rows × cols` matrix with `m` activation rows.
fn check(dtype: GgmlDType, rows: usize, cols: usize, m: usize, seed: u64) {
    let w = quantized(rows, cols, dtype, seed);
    let ours = QuantMatrix::new(&w).unwrap();
    assert_eq!(ours.formats(), vec![dtype], "held in its own format");
    let x = sample_values(m * cols, seed ^ 0xABCD);
    let out = out_with(&ours, dot::best(), &x, m);
    let [exact, bound, size] = reference(dtype, &w, &x, cols);
    for ((&o, &e), &b) in out.iter().zip(&exact).zip(&bound) {
        assert!(
            (o as f64 - e).abs() <= b,
            "{dtype:?} {rows}x{cols} m={m}: {o} vs {e} (bound {b})"
        );
    }
    // Row by row gives the same bits as the batch.
    for (i, x) in x.chunks_exact(cols).enumerate() {
        let one = out_with(&ours, dot::best(), x, 1);
        assert_eq!(
            one,
            out[i * rows..(i + 1) * rows],
            "{dtype:?}: row {i} differs alone"
        );
    }
    // Every kernel version this CPU runs gives the scalar version's bits, whatever the
    // split across threads.
    let scalar = out_with(&ours, dot::Isa::Scalar, &x, m);
    for isa in dot::available() {
        for threads in [1, 2, 3] {
            let theirs = in_threads(&ours, isa, &x, m, threads);
            assert_eq!(
                theirs, scalar,
                "{dtype:?}: {isa:?} on {threads} threads vs scalar"
            );
        }
    }
    // candle quantizes the activations exactly as we do, so the products differ only by
    // the order of the f32 sums: by far less than the bound (measured: below 1e-7 of
    // `Σ|w·x|`). candle's Q4_1, Q5_0 and Q5_1 kernels want an even number of blocks per
    // row (a debug assertion).
    let odd = [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1].contains(&dtype);
    if !odd || (cols / BLOCK).is_multiple_of(2) {
        let candle = candle_product(&w, &x, m, cols);
        for ((&o, &c), &s) in out.iter().zip(&candle).zip(&size) {
            assert!(
                (o - c).abs() as f64 <= 1e-6 * s + 1e-6,
                "{dtype:?} {o} vs candle {c}"
            );
        }
    }
}

/// The formats of 32-value blocks, which allow any width that is a multiple of 32.
const BLOCK_FORMATS: [GgmlDType; 8] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::F32,
];

const K_FORMATS: [GgmlDType; 3] = [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn block_formats_match_candle_and_the_reference(
        format in 0..BLOCK_FORMATS.len(),
        rows in 1usize..50, blocks in 1usize..12, m in 1usize..9, seed in any::<u64>()
    ) {
        check(BLOCK_FORMATS[format], rows, blocks * BLOCK, m, seed);
    }

    #[test]
    fn k_formats_match_candle_and_the_reference(
        format in 0..K_FORMATS.len(),
        rows in 1usize..40, supers in 1usize..4, m in 1usize..9, seed in any::<u64>()
    ) {
        check(K_FORMATS[format], rows, supers * SUPER, m, seed);
    }
}

#[test]
fn every_format_on_fixed_shapes() {
    // 576 is the default model's width: 18 blocks, not a multiple of 256.
    for (i, dtype) in BLOCK_FORMATS.into_iter().enumerate() {
        check(dtype, 37, 576, 3, i as u64);
        check(dtype, 16, 32, 1, 100 + i as u64);
    }
    for (i, dtype) in K_FORMATS.into_iter().enumerate() {
        check(dtype, 33, 512, 2, 200 + i as u64);
        check(dtype, 5, 256, 1, 300 + i as u64);
    }
}

#[test]
fn batches_of_one_to_eight_rows_agree_bit_for_bit() {
    for (i, dtype) in BLOCK_FORMATS.into_iter().chain(K_FORMATS).enumerate() {
        let (rows, cols) = (21, 512);
        let ours = QuantMatrix::new(&quantized(rows, cols, dtype, 40 + i as u64)).unwrap();
        let x = sample_values(8 * cols, 77 + i as u64);
        let all = out_with(&ours, dot::best(), &x, 8);
        for m in 1..=8 {
            for isa in dot::available() {
                let some = out_with(&ours, isa, &x[..m * cols], m);
                assert_eq!(some, all[..m * rows], "{dtype:?} m={m} {isa:?}");
            }
        }
    }
}

#[test]
fn stacked_matrices_equal_their_parts() {
    let cols = SUPER;
    // Runs of one format are held as one part; different formats each keep theirs.
    let parts = [
        quantized(6, cols, GgmlDType::Q4_1, 1),
        quantized(3, cols, GgmlDType::Q4_1, 2),
        quantized(5, cols, GgmlDType::Q6K, 3),
        quantized(17, cols, GgmlDType::Q4K, 4),
        quantized(4, cols, GgmlDType::Q8_0, 5),
        quantized(2, cols, GgmlDType::F16, 6),
    ];
    let stacked = QuantMatrix::stacked(&parts.iter().collect::<Vec<_>>()).unwrap();
    use GgmlDType::*;
    assert_eq!(stacked.formats(), vec![Q4_1, Q6K, Q4K, Q8_0, F16]);
    let total = stacked.rows();
    assert_eq!(total, 37);
    let x = sample_values(2 * cols, 9);
    let all = out_with(&stacked, dot::best(), &x, 2);
    let mut offset = 0;
    for p in &parts {
        let part = QuantMatrix::new(p).unwrap();
        let rows = part.rows();
        let want = out_with(&part, dot::best(), &x, 2);
        for i in 0..2 {
            assert_eq!(
                all[i * total + offset..i * total + offset + rows],
                want[i * rows..(i + 1) * rows]
            );
        }
        offset += rows;
    }
}

#[test]
fn formats_without_a_kernel_are_errors_not_widened() {
    for dtype in [GgmlDType::Q2K, GgmlDType::Q3K] {
        let err = QuantMatrix::new(&quantized(4, SUPER, dtype, 1)).unwrap_err();
        assert!(err.to_string().contains(&format!("{dtype:?}")), "{err}");
        assert!(!has_kernel(dtype));
    }
    for dtype in BLOCK_FORMATS.into_iter().chain(K_FORMATS) {
        assert!(has_kernel(dtype));
    }
}

#[test]
fn malformed_matrices_are_errors_not_panics() {
    use packed::NibbleFormat;
    assert!(quant::q4_1_groups(&[0u8; 19], 1, 32).is_none());
    assert!(quant::q8_0_groups(&[0u8; 34], 1, 33).is_none());
    assert!(packed::nibble_groups(NibbleFormat::Q5_1, &[0u8; 22], 1, 32).is_none());
    assert!(packed::half_groups(&[0u8; 63], 1, 32).is_none());
    assert!(packed_k::q4k_q5k_groups(&[0u8; 144], 1, 255, false).is_none());
    assert!(packed_k::q6k_groups(&[0u8; 209], 1, 256).is_none());
}

#[test]
fn fast_rounding_matches_f32_round() {
    // Every half integer in range and its neighbours (the exhaustive check over all
    // |x| <= 130 was run once; this keeps the cases that matter).
    for h in -300..=300 {
        let x = h as f32 * 0.5;
        for v in [
            x,
            f32::from_bits(x.to_bits() + 1),
            f32::from_bits(x.to_bits().max(1) - 1),
        ] {
            assert_eq!(quant::round_i8(v), v.round() as i8, "{v:e}");
        }
    }
    for v in sample_values(100_000, 3) {
        let v = v * 140.0;
        assert_eq!(quant::round_i8(v), v.round() as i8, "{v:e}");
    }
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30] {
        assert_eq!(quant::round_i8(v), v.round() as i8, "{v:e}");
    }
}

/// candle's own quantization of `x` to `dtype`, as raw block bytes.
fn candle_blocks(x: &[f32], dtype: GgmlDType) -> Vec<u8> {
    let t = Tensor::from_vec(x.to_vec(), (1, x.len()), &Device::Cpu).unwrap();
    QTensor::quantize(&t, dtype)
        .unwrap()
        .data()
        .unwrap()
        .into_owned()
}

#[test]
fn activation_quantizers_equal_candles_bit_for_bit() {
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    for seed in 0..20u64 {
        // Some rows with a zero block and some with large values.
        let mut x: Vec<f32> = sample_values(2 * SUPER, seed)
            .iter()
            .map(|v| v * (seed as f32 + 0.5))
            .collect();
        if seed % 3 == 0 {
            x[..BLOCK].fill(0.0);
        }
        let mut q81 = vec![
            quant::ActQ81 {
                qs: [0; BLOCK],
                d: 0.0,
                s: 0.0,
                sum: 0
            };
            16
        ];
        quant::quantize_q8_1(&x, &mut q81);
        for (a, b) in q81
            .iter()
            .zip(candle_blocks(&x, GgmlDType::Q8_1).chunks_exact(36))
        {
            assert_eq!((a.d, a.s), (f16(&b[0..2]), f16(&b[2..4])));
            assert!(a.qs.iter().zip(&b[4..]).all(|(&q, &c)| q == c as i8));
            assert_eq!(a.sum, a.qs.iter().map(|&q| q as i32).sum::<i32>());
        }
        let mut q80 = vec![
            quant::ActQ80 {
                qs: [0; BLOCK],
                d: 0.0,
                sum: 0
            };
            16
        ];
        quant::quantize_q8_0(&x, &mut q80);
        for (a, b) in q80
            .iter()
            .zip(candle_blocks(&x, GgmlDType::Q8_0).chunks_exact(34))
        {
            assert_eq!(a.d, f16(&b[0..2]));
            assert!(a.qs.iter().zip(&b[2..]).all(|(&q, &c)| q == c as i8));
        }
        let mut q8k = vec![quant::ActQ8K::default(); 2];
        quant::quantize_q8_k(&x, &mut q8k);
        for (a, b) in q8k
            .iter()
            .zip(candle_blocks(&x, GgmlDType::Q8K).chunks_exact(292))
        {
            assert_eq!(a.d.to_bits(), u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            assert!(a.qs.iter().zip(&b[4..260]).all(|(&q, &c)| q == c as i8));
            for (j, s) in a.bsums.iter().enumerate() {
                assert_eq!(*s, i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]));
            }
        }
    }
}
