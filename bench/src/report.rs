//! The side-by-side table: Switchyard's figure, Node's, and how many times better Switchyard is.

use serde_json::json;

use crate::scenarios::{Results, Sizes};

/// How many times better Switchyard is (>1 = better), whichever direction the metric goes
/// (NaN where a figure is zero or negative, e.g. an added latency within the noise).
fn ratio(switchyard: f64, node: f64, higher_is_better: bool) -> f64 {
    if switchyard <= 0.0 || node <= 0.0 {
        return f64::NAN;
    }
    if higher_is_better { switchyard / node } else { node / switchyard }
}

pub fn markdown(results: &Results, sizes: &Sizes) -> String {
    let mut out = format!(
        "Sizes: {} then {} idle connections held {} s, a room of {}, {} rooms of {}, {} s per scenario, \
         paced at {} publishes/s ({} deliveries/s), {} subscribers across two instances.\n\n| scenario | metric | Switchyard | Node 4.8 | × better | lost (S / N) |\n|---|---|---:|---:|---:|---:|\n",
        sizes.idle,
        sizes.idle_max,
        sizes.hold,
        sizes.room,
        sizes.rooms,
        sizes.per_room,
        sizes.seconds,
        sizes.paced_rate,
        sizes.paced_rate as usize * sizes.room,
        sizes.cross_subscribers,
    );
    // A server left out (`--servers`) shows as NaN.
    let missing = |m: &crate::measure::Measure| crate::measure::Measure { value: f64::NAN, lost: 0, ..m.clone() };
    let rows = results.switchyard.len().max(results.node.len());
    for i in 0..rows {
        let (s, n) = match (results.switchyard.get(i), results.node.get(i)) {
            (Some(s), Some(n)) => (s.clone(), n.clone()),
            (Some(s), None) => (s.clone(), missing(s)),
            (None, Some(n)) => (missing(n), n.clone()),
            (None, None) => unreachable!("i < rows"),
        };
        out.push_str(&format!(
            "| {} | {} ({}) | {:.2} | {:.2} | {:.2} | {} / {} |\n",
            s.scenario,
            s.metric,
            s.unit,
            s.value,
            n.value,
            ratio(s.value, n.value, s.higher_is_better),
            s.lost,
            n.lost
        ));
    }
    out
}

/// The latency curve as markdown rows.
pub fn curve(results: &Results) -> String {
    let mut out = String::from(
        "\n| offered deliveries/s | Switchyard delivered/s | p50 ms | p99 ms | Node delivered/s | p50 ms | p99 ms | lost (S / N) |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (s, n) in results.switchyard_curve.iter().zip(&results.node_curve) {
        out.push_str(&format!(
            "| {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} / {} |\n",
            s.offered_per_s,
            s.delivered_per_s,
            s.p50_ms,
            s.p99_ms,
            n.delivered_per_s,
            n.p50_ms,
            n.p99_ms,
            s.lost,
            n.lost
        ));
    }
    out
}

/// Delivered rate against p50 and p99 latency, both servers, log–log, as SVG.
pub fn svg(results: &Results) -> String {
    const W: f64 = 720.0;
    const H: f64 = 440.0;
    const L: f64 = 70.0;
    const B: f64 = 50.0;
    let points = results.switchyard_curve.iter().chain(&results.node_curve);
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x_min = x_min.min(p.delivered_per_s.max(1.0));
        x_max = x_max.max(p.delivered_per_s.max(1.0));
        y_min = y_min.min(p.p50_ms.max(0.01));
        y_max = y_max.max(p.p99_ms.max(0.01));
    }
    let (x_min, x_max) = ((x_min / 1.5).log10(), (x_max * 1.5).log10());
    let (y_min, y_max) = ((y_min / 1.5).log10(), (y_max * 1.5).log10());
    let x = |v: f64| L + (v.max(1.0).log10() - x_min) / (x_max - x_min) * (W - L - 20.0);
    let y = |v: f64| H - B - (v.max(0.01).log10() - y_min) / (y_max - y_min) * (H - B - 20.0);
    let line =
        |curve: &[crate::scenarios::Point], pick: fn(&crate::scenarios::Point) -> f64, color: &str, dash: &str| {
            let pts: Vec<String> =
                curve.iter().map(|p| format!("{:.1},{:.1}", x(p.delivered_per_s), y(pick(p)))).collect();
            format!(
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
                pts.join(" ")
            )
        };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    out.push_str(&format!(r#"<rect width="{W}" height="{H}" fill="white"/>"#));
    out.push_str(&format!(r#"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#, H - B, W - 20.0, H - B));
    out.push_str(&format!(r#"<line x1="{L}" y1="20" x2="{L}" y2="{}" stroke="black"/>"#, H - B));
    for exp in (x_min.ceil() as i32)..=(x_max.floor() as i32) {
        let v = 10f64.powi(exp);
        out.push_str(&format!(r#"<text x="{:.1}" y="{}" text-anchor="middle">{v}</text>"#, x(v), H - B + 18.0));
    }
    for exp in (y_min.ceil() as i32)..=(y_max.floor() as i32) {
        let v = 10f64.powi(exp);
        out.push_str(&format!(r#"<text x="{}" y="{:.1}" text-anchor="end">{v}</text>"#, L - 6.0, y(v) + 4.0));
    }
    out.push_str(&format!(
        r#"<text x="{}" y="{}" text-anchor="middle">deliveries/s (log)</text>"#,
        (W + L) / 2.0,
        H - 10.0
    ));
    out.push_str(&format!(
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">publish→receive ms (log)</text>"#,
        H / 2.0,
        H / 2.0
    ));
    for (curve, color, name) in
        [(&results.switchyard_curve, "#1f77b4", "Switchyard"), (&results.node_curve, "#d62728", "Node 4.8")]
    {
        out.push_str(&line(curve, |p| p.p99_ms, color, "none"));
        out.push_str(&line(curve, |p| p.p50_ms, color, "5,4"));
        let legend_y = if name == "Switchyard" { 36.0 } else { 54.0 };
        out.push_str(&format!(
            r#"<text x="{}" y="{legend_y}" fill="{color}">{name}: p99 solid, p50 dashed</text>"#,
            L + 12.0
        ));
    }
    out.push_str("</svg>\n");
    out
}

pub fn json(results: &Results, sizes: &Sizes) -> serde_json::Value {
    let rows: Vec<_> = results
        .switchyard
        .iter()
        .zip(&results.node)
        .map(|(s, n)| {
            json!({
                "scenario": s.scenario, "metric": s.metric, "unit": s.unit,
                "switchyard": s.value, "node": n.value,
                "ratio": ratio(s.value, n.value, s.higher_is_better),
                "lost": {"switchyard": s.lost, "node": n.lost},
            })
        })
        .collect();
    json!({"sizes": sizes, "rows": rows, "curve": {"switchyard": results.switchyard_curve, "node": results.node_curve}})
}

/// The smoke run fails when anything was lost or a server measured nothing.
pub fn check_smoke(results: &Results) -> anyhow::Result<()> {
    for p in results.switchyard_curve.iter().chain(&results.node_curve) {
        if p.lost != 0 {
            anyhow::bail!("latency curve at {} deliveries/s: {} deliveries lost", p.offered_per_s, p.lost);
        }
    }
    for m in results.switchyard.iter().chain(&results.node) {
        if m.lost != 0 {
            anyhow::bail!("{} / {}: {} deliveries lost", m.scenario, m.metric, m.lost);
        }
        let measured = match (m.scenario, m.metric) {
            // Memory read in KiB from a few hundred connections may round to nothing.
            ("idle connections", _) | (crate::plain::SCENARIO, _) => true,
            (_, crate::scenarios::ADDED_P50) => m.value.is_finite(),
            _ => m.value.is_finite() && m.value > 0.0,
        };
        if !measured {
            anyhow::bail!("{} / {}: measured {}", m.scenario, m.metric, m.value);
        }
    }
    Ok(())
}
