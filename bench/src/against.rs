//! `compare --against <older binary>`: the chosen scenarios for an older build, this build and
//! Node, alternated round by round in one run (so a machine that drifts moves all three alike),
//! reported as each row's median and spread, with the ratios new/old and new/Node. Every note
//! that touches a delivery path shows its rows this way.

use std::path::{Path, PathBuf};

use crate::measure::Measure;
use crate::scenarios::{self, Sizes};
use crate::servers::{self, Kind};

/// The three columns.
const BUILDS: [&str; 3] = ["old", "new", "Node"];

/// One row: its measure's identity and the values each build gave, round by round.
struct Row {
    scenario: &'static str,
    metric: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    values: [Vec<f64>; 3],
    lost: [i64; 3],
}

pub async fn run(sizes: &Sizes, against: &Path) -> anyhow::Result<String> {
    anyhow::ensure!(against.exists(), "--against {}: no such binary", against.display());
    let mut rows: Vec<Row> = Vec::new();
    for round in 1..=sizes.rounds {
        for (column, build) in BUILDS.iter().enumerate() {
            eprintln!("round {round}/{}: {build}", sizes.rounds);
            let (kind, binary) = match column {
                0 => (Kind::Switchyard, Some(against.to_path_buf())),
                1 => (Kind::Switchyard, None::<PathBuf>),
                _ => (Kind::Node, None),
            };
            servers::choose_binary(binary);
            let one = Sizes { servers: vec![kind], against: None, ..sizes.clone() };
            let results = scenarios::run_all(&one).await;
            servers::choose_binary(None);
            let results = results?;
            let measures = if kind == Kind::Node { results.node } else { results.switchyard };
            for m in measures {
                add(&mut rows, column, &m);
            }
        }
    }
    Ok(markdown(&rows, sizes, against))
}

fn add(rows: &mut Vec<Row>, column: usize, m: &Measure) {
    let index = match rows.iter().position(|r| r.scenario == m.scenario && r.metric == m.metric) {
        Some(i) => i,
        None => {
            rows.push(Row {
                scenario: m.scenario,
                metric: m.metric,
                unit: m.unit,
                higher_is_better: m.higher_is_better,
                values: Default::default(),
                lost: [0; 3],
            });
            rows.len() - 1
        }
    };
    rows[index].values[column].push(m.value);
    rows[index].lost[column] += m.lost;
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// `median (min–max)`.
fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2} ({:.2}–{:.2})", median(values), min, max)
}

/// How many times better `a` is than `b`.
fn better(a: f64, b: f64, higher_is_better: bool) -> f64 {
    if higher_is_better { a / b } else { b / a }
}

fn markdown(rows: &[Row], sizes: &Sizes, against: &Path) -> String {
    let mut out = format!(
        "old: {}; new: this build; {} rounds, the builds alternated in each. Median (min–max) per cell; \
         × better is the medians' ratio.\n\n\
         | scenario | metric | old | new | Node 4.8 | new × old | new × Node | lost (old / new / Node) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
        against.display(),
        sizes.rounds,
    );
    for row in rows {
        let [old, new, node] = [0, 1, 2].map(|c| median(&row.values[c]));
        out.push_str(&format!(
            "| {} | {} ({}) | {} | {} | {} | ×{:.2} | ×{:.2} | {} / {} / {} |\n",
            row.scenario,
            row.metric,
            row.unit,
            spread(&row.values[0]),
            spread(&row.values[1]),
            spread(&row.values[2]),
            better(new, old, row.higher_is_better),
            better(new, node, row.higher_is_better),
            row.lost[0],
            row.lost[1],
            row.lost[2],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads_read_as_the_table_shows_them() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(spread(&[2.0, 1.0, 3.0]), "2.00 (1.00–3.00)");
        assert_eq!(better(2.0, 4.0, false), 2.0);
        assert_eq!(better(2.0, 4.0, true), 0.5);
    }
}
