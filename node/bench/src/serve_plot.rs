//! The SVG chart of `bench serve`: aggregate tok/s of the closed-loop levels as bars
//! (one per number of clients), the executor's batched ceiling and the 3x-one-client
//! goal as dashed lines, and each bar's inter-token latency p50 written under it.
//! Hand-written like [`crate::plot`] (no font backend needed).

use crate::plot::tick_step;
use crate::serve::ServeReport;
use std::fmt::Write;

const W: f64 = 560.0;
const H: f64 = 340.0;
const MARGIN: (f64, f64, f64, f64) = (56.0, 150.0, 40.0, 56.0); // left, right, top, bottom
const BAR: &str = "#1f77b4";

/// The chart as an SVG document.
pub(crate) fn serve_svg(r: &ServeReport) -> String {
    let one = r
        .levels
        .iter()
        .find(|l| l.clients == 1)
        .map_or(0.0, |l| l.tok_s);
    let goal = 3.0 * one;
    let highest = r
        .levels
        .iter()
        .map(|l| l.tok_s)
        .fold(r.ceiling.max(goal), f64::max);
    let step = tick_step(highest);
    let y_max = (highest / step).ceil().max(1.0) * step;
    let (ml, mr, mt, mb) = MARGIN;
    let (x0, x1, y0, y1) = (ml, W - mr, H - mb, mt);
    let sy = |y: f64| y0 - y / y_max * (y0 - y1);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">bench serve: aggregate tok/s ({})</text>"#,
        W / 2.0,
        xml_escape(&r.cpu)
    );
    let _ = writeln!(
        svg,
        r##"<path d="M{x0},{y1} L{x0},{y0} L{x1},{y0}" fill="none" stroke="#000"/>"##
    );
    let ticks = (y_max / step).round() as usize;
    for i in 0..=ticks {
        let v = step * i as f64;
        let y = sy(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            x0 - 6.0,
            y + 4.0
        );
    }
    let slot = (x1 - x0) / r.levels.len().max(1) as f64;
    for (i, l) in r.levels.iter().enumerate() {
        let x = x0 + slot * (i as f64 + 0.2);
        let y = sy(l.tok_s);
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{BAR}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{:.0}</text>"#,
            slot * 0.6,
            y0 - y,
            x + slot * 0.3,
            y - 4.0,
            l.tok_s
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{} clients</text><text x="{:.1}" y="{}" text-anchor="middle" fill="#555">ITL p50 {:.0} ms</text>"##,
            x + slot * 0.3,
            y0 + 16.0,
            l.clients,
            x + slot * 0.3,
            y0 + 32.0,
            l.p50_ms
        );
    }
    for (value, color, label) in [
        (
            r.ceiling,
            "#d62728",
            format!("ceiling, {} sessions", r.ceiling_batch),
        ),
        (goal, "#2ca02c", "goal: 3x one client".to_string()),
    ] {
        let y = sy(value);
        let _ = writeln!(
            svg,
            r#"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="5 4"/><text x="{}" y="{:.1}" fill="{color}">{label} ({value:.0})</text>"#,
            x1 + 6.0,
            y + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">tok/s</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve_load::{Batching, Level};

    #[test]
    fn the_chart_has_a_bar_per_level_and_both_lines() {
        let level = |clients, tok_s| Level {
            clients,
            tok_s,
            p50_ms: 10.0,
            p99_ms: 20.0,
            batching: Batching::default(),
        };
        let report = ServeReport {
            cpu: "AMD EPYC".into(),
            ceiling: 320.0,
            ceiling_batch: 16,
            single: 110.0,
            levels: vec![level(1, 100.0), level(4, 200.0), level(16, 310.0)],
            ttft: vec![],
            llama: Err("not installed".into()),
        };
        let svg = serve_svg(&report);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r##"fill="#1f77b4""##).count(), 3);
        assert!(svg.contains("ceiling, 16 sessions (320)"));
        assert!(svg.contains("goal: 3x one client (300)"));
        for cap in svg.split(" y=\"").skip(1) {
            let y: f64 = cap.split('"').next().unwrap().parse().unwrap();
            assert!((0.0..=H).contains(&y), "{y}");
        }
    }
}
