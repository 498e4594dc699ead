//! `neuroshard bench kernels`: our fused kernels against candle's `QMatMul` on the same
//! weights, measured in the same run, for every format the kernels hold.
//!
//! For each format, a 2048 x 2048 matrix and a 1536 x 576 one (the default model's
//! width, which the K-quants cannot take: their super-blocks are 256 wide) are quantized
//! from the same random values; each product with `m` = 1 and 4 activation rows is timed
//! for both engines in alternating 20 ms slices (the median call of each after a
//! warm-up), and the table gives the milliseconds and candle's time over ours (above 1:
//! ours is faster). Both run on every core: ours in the kernels' pool (driven from one of
//! its threads, as a forward pass is), candle on its own threads. candle holds
//! F16, BF16 and F32 weights as f32 tensors (`QMatMul::from_qtensor` widens them), so for
//! those it is its f32 matmul that is timed.

use anyhow::Context;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use neuroshard_inference::kernels::{self, QuantMatrix};
use std::time::{Duration, Instant};

/// What `bench kernels` measures.
#[derive(Clone, Debug)]
pub struct KernelsOptions {
    /// Time spent timing each (format, shape, m, engine), after the warm-up.
    pub budget: Duration,
    /// Only these formats (all of [`kernels::FORMATS`] when empty).
    pub formats: Vec<GgmlDType>,
}

impl Default for KernelsOptions {
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(300),
            formats: Vec::new(),
        }
    }
}

/// The CPU's model name as `/proc/cpuinfo` gives it (or "unknown CPU").
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The median time of one call of `a` and of `b`, timed in alternating slices of about
/// 20 ms (so both see the same load on a shared machine) until `budget` has passed for
/// each, after three warm-up calls of each.
fn medians(budget: Duration, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..3 {
        a();
        b();
    }
    let slice = Duration::from_millis(20);
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let (mut spent_a, mut spent_b) = (Duration::ZERO, Duration::ZERO);
    while spent_a < budget || spent_b < budget || ta.len() < 5 || tb.len() < 5 {
        for (f, times, spent) in [
            (&mut a as &mut dyn FnMut(), &mut ta, &mut spent_a),
            (&mut b as &mut dyn FnMut(), &mut tb, &mut spent_b),
        ] {
            let start = Instant::now();
            while start.elapsed() < slice {
                let t = Instant::now();
                f();
                times.push(t.elapsed());
            }
            *spent += start.elapsed();
        }
    }
    let median = |t: &mut Vec<Duration>| {
        t.sort();
        t[t.len() / 2]
    };
    (median(&mut ta), median(&mut tb))
}

/// One row of the table.
struct Row {
    format: GgmlDType,
    shape: (usize, usize),
    m: usize,
    ours: Duration,
    candle: Duration,
}

/// Times one format on one shape at m = 1 and 4; `None` when the format cannot take the
/// width.
fn measure(
    opts: &KernelsOptions,
    format: GgmlDType,
    (rows, cols): (usize, usize),
) -> anyhow::Result<Option<Vec<Row>>> {
    if !cols.is_multiple_of(format.block_size()) {
        return Ok(None);
    }
    let w = Tensor::from_vec(
        kernels::sample_values(rows * cols, 1),
        (rows, cols),
        &Device::Cpu,
    )?;
    let q = std::sync::Arc::new(QTensor::quantize(&w, format)?);
    // Ours as the loader builds it (16-bit floats stay 16-bit); candle's as candle does.
    let ours = QuantMatrix::new(&QMatMul::QTensor(q.clone()))
        .with_context(|| format!("{format:?} {rows}x{cols}"))?;
    let candle = QMatMul::from_arc(q)?;
    let mut out = Vec::new();
    for m in [1, 4] {
        let x = kernels::sample_values(m * cols, 2 + m as u64);
        let xt = Tensor::from_vec(x.clone(), (m, cols), &Device::Cpu)?;
        let mut y = vec![0f32; m * rows];
        let mut failed = None;
        // The driving thread is one of the kernels' workers, as in a forward pass.
        let (ours_t, candle_t) = kernels::in_pool(|| {
            medians(
                opts.budget,
                || ours.matmul(&x, m, &mut y),
                || {
                    if let Err(e) = candle.forward(&xt) {
                        failed = Some(e);
                    }
                },
            )
        });
        if let Some(e) = failed {
            return Err(e).context(format!("candle {format:?} {rows}x{cols} m={m}"));
        }
        out.push(Row {
            format,
            shape: (rows, cols),
            m,
            ours: ours_t,
            candle: candle_t,
        });
    }
    Ok(Some(out))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark and prints its table.
pub fn run(opts: &KernelsOptions) -> anyhow::Result<()> {
    let formats: Vec<GgmlDType> = if opts.formats.is_empty() {
        kernels::FORMATS.to_vec()
    } else {
        opts.formats.clone()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench kernels: {} ({threads} threads), our kernel family {:?}; median of each \
         product, candle's QMatMul on the same weights in the same run",
        cpu_name(),
        kernels::dot::best()
    );
    println!(
        "{:<6} {:>11} {:>2} {:>10} {:>10} {:>13}",
        "format", "rows x cols", "m", "ours ms", "candle ms", "candle / ours"
    );
    for format in formats {
        for shape in [(2048, 2048), (1536, 576)] {
            let Some(rows) = measure(opts, format, shape)? else {
                println!(
                    "{:<6} {:>11}  (width {} is not a multiple of the {}-value block)",
                    format!("{format:?}"),
                    format!("{}x{}", shape.0, shape.1),
                    shape.1,
                    format.block_size()
                );
                continue;
            };
            for r in rows {
                println!(
                    "{:<6} {:>11} {:>2} {:>10.4} {:>10.4} {:>12.2}x",
                    format!("{:?}", r.format),
                    format!("{}x{}", r.shape.0, r.shape.1),
                    r.m,
                    ms(r.ours),
                    ms(r.candle),
                    ms(r.candle) / ms(r.ours)
                );
            }
        }
    }
    Ok(())
}

/// Parses a format name as GGUF tools spell it (`q4_k`, `Q4K`, `bf16`, ...).
pub fn parse_format(name: &str) -> anyhow::Result<GgmlDType> {
    let key = name.to_ascii_lowercase().replace('_', "");
    kernels::FORMATS
        .into_iter()
        .find(|f| format!("{f:?}").to_ascii_lowercase().replace('_', "") == key)
        .with_context(|| format!("unknown format {name:?} (have {:?})", kernels::FORMATS))
}
