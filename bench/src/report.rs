//! The side-by-side table: Switchyard's figure, Node's, and how many times better Switchyard is.

use serde_json::json;

use crate::scenarios::{Results, Sizes};

/// How many times better Switchyard is (>1 = better), whichever direction the metric goes.
fn ratio(switchyard: f64, node: f64, higher_is_better: bool) -> f64 {
    if switchyard <= 0.0 || node <= 0.0 {
        return f64::NAN;
    }
    if higher_is_better { switchyard / node } else { node / switchyard }
}

pub fn markdown(results: &Results, sizes: &Sizes) -> String {
    let mut out = format!(
        "Sizes: {} idle connections, a room of {}, {} s per scenario, paced at {} publishes/s \
         ({} deliveries/s).\n\n| scenario | metric | Switchyard | Node 4.8 | × better | lost (S / N) |\n|---|---|---:|---:|---:|---:|\n",
        sizes.idle,
        sizes.room,
        sizes.seconds,
        sizes.paced_rate,
        sizes.paced_rate as usize * sizes.room
    );
    for (s, n) in results.switchyard.iter().zip(&results.node) {
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
    json!({"sizes": sizes, "rows": rows})
}

/// The smoke run fails when anything was lost or a server measured nothing.
pub fn check_smoke(results: &Results) -> anyhow::Result<()> {
    for m in results.switchyard.iter().chain(&results.node) {
        if m.lost != 0 {
            anyhow::bail!("{} / {}: {} deliveries lost", m.scenario, m.metric, m.lost);
        }
        if !(m.value.is_finite() && m.value > 0.0) && m.scenario != "idle connections" {
            anyhow::bail!("{} / {}: measured {}", m.scenario, m.metric, m.value);
        }
    }
    Ok(())
}
