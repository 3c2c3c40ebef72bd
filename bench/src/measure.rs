//! One measured figure of one server, as every scenario reports it.

use serde::Serialize;

/// One measured figure of one server.
#[derive(Debug, Clone, Serialize)]
pub struct Measure {
    pub scenario: &'static str,
    pub metric: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
    pub value: f64,
    pub lost: i64,
}

pub fn measure(
    scenario: &'static str,
    metric: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    value: f64,
    lost: i64,
) -> Measure {
    Measure { scenario, metric, unit, higher_is_better, value, lost }
}
