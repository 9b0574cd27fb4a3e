//! Reads a `/metrics` answer as Prometheus would: through an independent
//! text-format parser, not by matching our own strings.

use prometheus_parse::{Scrape, Value};

pub(crate) struct Metrics(Scrape);

impl Metrics {
    pub(crate) fn parse(body: &str) -> Self {
        let lines = body.lines().map(|line| Ok(line.to_string()));
        Self(Scrape::parse(lines).unwrap_or_else(|e| panic!("not the Prometheus format: {e}")))
    }

    /// The value of the sample `name` with exactly these labels, if any;
    /// for a histogram, its count.
    pub(crate) fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .map_or(0.0, |b| b.count),
                Value::Summary(_) => panic!("{name} is a summary"),
            })
    }

    /// Like [`get`](Self::get), for a sample that must be there.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }
}
