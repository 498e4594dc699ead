//! The SVG chart of `bench sweep`: tok/s against the number of shards and against the
//! per-hop latency, plain and speculative, with the single-process baseline dashed.
//! Written by hand (two line charts need no plotting crate; plotters' axis layout wants a
//! font backend, fontconfig or a bundled TTF, which a headless CI machine may not have).

use crate::sweep::{SweepPoint, SweepReport};
use std::fmt::Write;

const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 320.0;
const MARGIN: (f64, f64, f64, f64) = (56.0, 16.0, 40.0, 48.0); // left, right, top, bottom
const PLAIN: &str = "#1f77b4";
const SPECULATIVE: &str = "#d62728";

/// The whole chart as an SVG document.
pub fn sweep_svg(report: &SweepReport) -> String {
    let highest = report
        .by_shards
        .iter()
        .chain(&report.by_latency)
        .flat_map(|p| [p.plain_tps, p.speculative_tps])
        .fold(report.single_tps, f64::max);
    let step = tick_step(highest);
    let y_max = (highest / step).ceil().max(1.0) * step;
    let mut svg = String::new();
    let width = 2.0 * PANEL_W;
    let height = PANEL_H + 28.0;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let shard_latency = report.by_shards.first().map_or(0, |p| p.latency_ms);
    let latency_shards = report.by_latency.first().map_or(0, |p| p.shards);
    panel(
        &mut svg,
        0.0,
        &format!("tok/s vs shards ({shard_latency} ms per hop)"),
        "shards (hops)",
        &report.by_shards,
        |p| p.shards as f64,
        y_max,
        report.single_tps,
    );
    panel(
        &mut svg,
        PANEL_W,
        &format!("tok/s vs per-hop latency ({latency_shards} shards)"),
        "ms per hop",
        &report.by_latency,
        |p| p.latency_ms as f64,
        y_max,
        report.single_tps,
    );
    // Legend under the panels.
    let y = PANEL_H + 14.0;
    for (i, (label, color, dash)) in [
        ("plain", PLAIN, ""),
        ("n-gram speculative", SPECULATIVE, ""),
        (
            "single process, no latency",
            "#555",
            r#" stroke-dasharray="5 4""#,
        ),
    ]
    .iter()
    .enumerate()
    {
        let x = 80.0 + i as f64 * 230.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{label}</text>"#,
            x + 24.0,
            x + 30.0,
            y + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round tick step (1, 2 or 5 times a power of ten) giving at most six ticks up to
/// `highest`.
pub(crate) fn tick_step(highest: f64) -> f64 {
    let raw = (highest.max(1e-9) / 5.0).max(1e-9);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * magnitude)
}

#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    left: f64,
    title: &str,
    x_label: &str,
    points: &[SweepPoint],
    x_of: impl Fn(&SweepPoint) -> f64,
    y_max: f64,
    baseline: f64,
) {
    let (ml, mr, mt, mb) = MARGIN;
    let (x0, x1) = (left + ml, left + PANEL_W - mr);
    let (y0, y1) = (PANEL_H - mb, mt);
    let xs: Vec<f64> = points.iter().map(&x_of).collect();
    let (x_min, x_max) = xs
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let span = (x_max - x_min).max(1.0);
    let sx = |x: f64| x0 + (x - x_min) / span * (x1 - x0);
    let sy = |y: f64| y0 - y / y_max.max(1e-9) * (y0 - y1);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{title}</text>"#,
        (x0 + x1) / 2.0
    );
    // Axes, grid and ticks.
    let _ = writeln!(
        svg,
        r##"<path d="M{x0},{y1} L{x0},{y0} L{x1},{y0}" fill="none" stroke="#000"/>"##
    );
    let step = tick_step(y_max * 0.999);
    let ticks = (y_max / step).round() as usize;
    for i in 0..=ticks {
        let v = step * i as f64;
        let y = sy(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{v:.0}</text>"##,
            x0 - 6.0,
            y + 4.0
        );
    }
    for &x in &xs {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{x}</text>"#,
            sx(x),
            y0 + 16.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{x_label}</text><text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">tok/s</text>"#,
        (x0 + x1) / 2.0,
        y0 + 34.0,
        left + 14.0,
        (y0 + y1) / 2.0,
        left + 14.0,
        (y0 + y1) / 2.0
    );
    let by = sy(baseline);
    let _ = writeln!(
        svg,
        r##"<line x1="{x0}" y1="{by}" x2="{x1}" y2="{by}" stroke="#555" stroke-width="1.5" stroke-dasharray="5 4"/>"##
    );
    for (color, value) in [
        (
            PLAIN,
            (|p: &SweepPoint| p.plain_tps) as fn(&SweepPoint) -> f64,
        ),
        (SPECULATIVE, |p: &SweepPoint| p.speculative_tps),
    ] {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(x_of(p)), sy(value(p))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for p in points {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                sx(x_of(p)),
                sy(value(p))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_both_series_of_both_panels() {
        let point = |shards, latency_ms, plain_tps, speculative_tps| SweepPoint {
            shards,
            latency_ms,
            plain_tps,
            speculative_tps,
            acceptance_rate: 0.5,
            tokens_per_round: 2.0,
        };
        let report = SweepReport {
            tokens: 32,
            single_tps: 100.0,
            by_shards: vec![point(1, 10, 50.0, 80.0), point(3, 10, 20.0, 60.0)],
            by_latency: vec![point(3, 0, 90.0, 95.0), point(3, 50, 6.0, 20.0)],
        };
        let svg = sweep_svg(&report);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<circle").count(), 8);
        assert!(svg.contains("tok/s vs shards (10 ms per hop)"));
        assert!(svg.contains("tok/s vs per-hop latency (3 shards)"));
        assert_eq!(tick_step(163.0), 50.0);
        assert_eq!(tick_step(100.0), 20.0);
        assert_eq!(tick_step(7.0), 2.0);
        // Every coordinate is a finite number inside the picture.
        for cap in svg.split("cy=\"").skip(1) {
            let y: f64 = cap.split('"').next().unwrap().parse().unwrap();
            assert!((0.0..=PANEL_H).contains(&y), "{y}");
        }
    }
}
