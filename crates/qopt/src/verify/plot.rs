//! A bar chart of per-layer SQNR as SVG, written by hand: one horizontal bar per layer in
//! graph order, a second, thinner bar per layer for the sensitivity run ("only this layer
//! quantized") when there is one, and the graph outputs at the bottom. Plain SVG 1.1 that
//! every browser shows; no plotting crate is needed for bars and labels.

use super::Report;
use std::fmt::Write;

const ROW: f64 = 18.0;
const LABEL_W: f64 = 320.0;
const BAR_W: f64 = 480.0;
const TOP: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn short(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 48 {
        s.to_string()
    } else {
        format!(
            "...{}",
            chars[chars.len() - 45..].iter().collect::<String>()
        )
    }
}

/// The chart for a report.
pub fn svg(report: &Report) -> String {
    // (label, SQNR of the full quantized model at this value, SQNR with only this layer).
    let mut rows: Vec<(String, f64, Option<f64>)> = report
        .layers
        .iter()
        .map(|l| {
            let only = report.sensitivity.as_ref().and_then(|s| {
                s.layers
                    .iter()
                    .find(|e| e.name == l.name)
                    .map(|e| e.only_this_quantized_sqnr_db)
            });
            (l.name.clone(), l.metrics.sqnr_db, only)
        })
        .collect();
    rows.extend(
        report
            .outputs
            .iter()
            .map(|o| (format!("output {}", o.name), o.metrics.sqnr_db, None)),
    );
    let finite = rows
        .iter()
        .flat_map(|r| [Some(r.1), r.2])
        .flatten()
        .filter(|x| x.is_finite());
    let max = finite.fold(10.0f64, f64::max).ceil();
    let scale = |db: f64| -> f64 {
        if db.is_nan() || db <= 0.0 {
            0.0
        } else {
            BAR_W * db.min(max) / max
        }
    };
    let height = TOP + ROW * rows.len() as f64 + 40.0;
    let width = LABEL_W + BAR_W + 90.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">SQNR per quantized layer (dB, higher is better), {} engine, {} samples</text>"#,
        esc(&report.engine),
        report.samples
    );
    if report.sensitivity.is_some() {
        let _ = writeln!(
            s,
            r##"<text x="10" y="32" fill="#555">blue: whole quantized model at this value; orange: output SQNR with only this layer quantized</text>"##
        );
    }
    for (i, (label, db, only)) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 6.0,
            y + 12.0,
            esc(&short(label))
        );
        let h = if only.is_some() { 9.0 } else { 14.0 };
        let _ = writeln!(
            s,
            r##"<rect x="{LABEL_W}" y="{}" width="{:.1}" height="{h}" fill="#4472c4"/>"##,
            y + 1.0,
            scale(*db)
        );
        if let Some(o) = only {
            let _ = writeln!(
                s,
                r##"<rect x="{LABEL_W}" y="{}" width="{:.1}" height="5" fill="#ed7d31"/>"##,
                y + 10.0,
                scale(*o)
            );
        }
        let text = if db.is_finite() {
            format!("{db:.1}")
        } else {
            format!("{db}")
        };
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}">{text}</text>"#,
            LABEL_W + scale(*db) + 4.0,
            y + 11.0
        );
    }
    let axis_y = TOP + ROW * rows.len() as f64 + 4.0;
    let _ = writeln!(
        s,
        r#"<line x1="{LABEL_W}" y1="{axis_y}" x2="{}" y2="{axis_y}" stroke="black"/>"#,
        LABEL_W + BAR_W
    );
    for k in 0..=4 {
        let db = max * k as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{db:.0} dB</text>"#,
            LABEL_W + scale(db),
            axis_y + 16.0
        );
    }
    s.push_str("</svg>\n");
    s
}
