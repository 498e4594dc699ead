//! Runs the inference benchmark: `cargo run --release -p neuroshard-inference --example bench`.

fn main() -> anyhow::Result<()> {
    neuroshard_inference::bench::bench_inference(Default::default())?;
    Ok(())
}
