//! What the processes under test hold: the gateway's resident memory and
//! descriptors from `/proc`, its clients' own estimate from its metrics
//! listener, and, on PostgreSQL, the memory of the server processes apart.

use std::collections::BTreeMap;

use anyhow::Context;

/// Resident and proportional memory of one process, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcMemory {
    pub rss_kib: u64,
    /// Pages shared with other processes count in proportion (PostgreSQL's
    /// shared buffers, mapped by every backend, count once over all).
    pub pss_kib: u64,
}

impl ProcMemory {
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        Ok(Self {
            rss_kib: kib_field(&format!("/proc/{pid}/status"), "VmRSS:")?,
            pss_kib: kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")?,
        })
    }
}

fn kib_field(path: &str, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| path.to_string())?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} line in {path}"))
}

pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// What the gateway's `GET /metrics` says about its clients' memory.
#[derive(Debug, Default)]
pub(crate) struct ClientMemory {
    /// Sessions reporting a figure (the working ones).
    pub sessions: usize,
    /// The sum of every session's `memory_report()` total.
    pub total_bytes: f64,
    /// By part of the report, summed over sessions: (bytes, entries).
    pub parts: BTreeMap<String, (f64, f64)>,
}

impl ClientMemory {
    pub(crate) async fn scrape(http: &reqwest::Client, metrics_base: &str) -> anyhow::Result<Self> {
        let text = http
            .get(format!("{metrics_base}/metrics"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let mut memory = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            match name {
                "wagate_session_client_memory_bytes" => {
                    memory.sessions += 1;
                    memory.total_bytes += value;
                }
                "wagate_client_memory_part_bytes" => {
                    memory.parts.entry(part(labels)).or_default().0 += value;
                }
                "wagate_client_memory_part_entries" => {
                    memory.parts.entry(part(labels)).or_default().1 += value;
                }
                _ => {}
            }
        }
        Ok(memory)
    }

    pub(crate) fn print(&self) {
        let per = |bytes: f64| bytes / self.sessions.max(1) as f64;
        println!(
            "clients' own estimate (memory_report, {} working sessions): {:.1} MiB in all, {:.0} B per session",
            self.sessions,
            self.total_bytes / 1_048_576.0,
            per(self.total_bytes)
        );
        for (part, (bytes, entries)) in &self.parts {
            if *bytes > 0.0 || *entries > 0.0 {
                println!(
                    "  {part:<24} {:>10.0} B per session, {:>8.2} entries per session",
                    per(*bytes),
                    entries / self.sessions.max(1) as f64
                );
            }
        }
    }
}

fn part(labels: &str) -> String {
    labels
        .split(',')
        .find_map(|l| l.strip_prefix("part=\""))
        .map(|v| v.trim_end_matches(['"', '}']).to_string())
        .unwrap_or_default()
}

/// The PostgreSQL server's memory, apart from the gateway's.
#[derive(Debug, Default)]
pub(crate) struct PostgresMemory {
    /// Backends connected to the benchmark's database (the gateway's pool).
    pub backends: usize,
    pub backends_memory: ProcMemory,
    /// Every process `pg_stat_activity` lists (those backends, the other
    /// databases' and the server's own background processes); not the
    /// postmaster, which it does not list.
    pub server: usize,
    pub server_memory: ProcMemory,
}

impl PostgresMemory {
    pub(crate) async fn read(
        admin: &mut sqlx::PgConnection,
        database: &str,
    ) -> anyhow::Result<Self> {
        let rows: Vec<(i32, Option<String>)> =
            sqlx::query_as("SELECT pid, datname::text FROM pg_stat_activity")
                .fetch_all(admin)
                .await?;
        let mut memory = Self::default();
        for (pid, datname) in rows {
            // A backend that ended since the query is simply not counted.
            let Ok(of) = u32::try_from(pid)
                .map_err(anyhow::Error::from)
                .and_then(ProcMemory::of)
            else {
                continue;
            };
            memory.server += 1;
            memory.server_memory.rss_kib += of.rss_kib;
            memory.server_memory.pss_kib += of.pss_kib;
            if datname.as_deref() == Some(database) {
                memory.backends += 1;
                memory.backends_memory.rss_kib += of.rss_kib;
                memory.backends_memory.pss_kib += of.pss_kib;
            }
        }
        Ok(memory)
    }

    pub(crate) fn print(&self) {
        println!(
            "PostgreSQL, {} backends of the benchmark's database: RSS {}, PSS {} (sum over /proc/PID/status VmRSS and smaps_rollup Pss)",
            self.backends,
            crate::mib(self.backends_memory.rss_kib),
            crate::mib(self.backends_memory.pss_kib)
        );
        println!(
            "PostgreSQL, all {} processes pg_stat_activity lists: RSS {}, PSS {}",
            self.server,
            crate::mib(self.server_memory.rss_kib),
            crate::mib(self.server_memory.pss_kib)
        );
    }
}

/// The process's resident set from `/proc/PID/status`.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/status"));
    let status = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}
