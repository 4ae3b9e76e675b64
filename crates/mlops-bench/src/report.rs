//! The benchmark's table, the machine it ran on, and the checks against the targets.

use std::fmt::Write as _;
use std::time::Duration;

use crate::world::Sample;

/// One scenario's measurements: concurrent, and one request at a time when that ran.
pub struct Row {
    pub label: String,
    pub concurrent: Sample,
    pub sequential: Option<Sample>,
}

/// Converts a wall time into round trips of `latency`.
pub fn round_trips(wall: Duration, latency: Duration) -> f64 {
    wall.as_nanos() as f64 / latency.as_nanos() as f64
}

fn mebibytes(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".to_owned(), |kib| format!("{:.1} MiB", kib as f64 / 1024.0))
}

/// Renders the table of every scenario.
pub fn table(rows: &[Row], latency: Duration) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<40} {:>7} {:>8} {:>10} {:>9} {:>9} {:>10} {:>10} {:>13} {:>7}",
        "scenario", "objects", "requests", "req/object", "throttled", "SCIM peak", "wall (RTT)", "peak RSS", "one-at-a-time", "ratio"
    );
    for row in rows {
        let sample = &row.concurrent;
        let concurrent_rtt = round_trips(sample.wall, latency);
        let (sequential, ratio) = match &row.sequential {
            Some(sequential) => {
                let sequential_rtt = round_trips(sequential.wall, latency);
                (format!("{sequential_rtt:.1}"), format!("{:.1}x", sequential_rtt / concurrent_rtt))
            }
            None => ("-".to_owned(), "-".to_owned()),
        };
        let per_object = match sample.objects {
            0 => "n/a".to_owned(),
            objects => format!("{:.2}", sample.requests as f64 / objects as f64),
        };
        let _ = writeln!(
            text,
            "{:<40} {:>7} {:>8} {:>10} {:>9} {:>9} {:>10.1} {:>10} {:>13} {:>7}",
            row.label,
            sample.objects,
            sample.requests,
            per_object,
            sample.throttled,
            sample.peak_scim_in_flight,
            concurrent_rtt,
            mebibytes(sample.peak_rss_kib),
            sequential,
            ratio,
        );
    }
    text
}

/// The limits a run is checked against.
pub struct Targets {
    pub steady_plan_round_trips: f64,
    pub steady_plan_requests_per_object: f64,
    pub first_apply_round_trips: f64,
    pub fleet_plan_round_trips: f64,
    pub peak_rss_mib: f64,
}

/// The rows that the targets name.
pub struct Checked<'a> {
    pub steady_plan: &'a Sample,
    pub first_apply: &'a Sample,
    pub fleet_plan: &'a Sample,
    pub all: &'a [Row],
}

/// Renders one line per target with `met` or `MISSED`, and returns whether every target was met.
pub fn check(targets: &Targets, checked: &Checked<'_>, latency: Duration) -> (String, bool) {
    let mut lines = Vec::new();
    let mut all_met = true;
    let mut line = |met: bool, text: String| {
        all_met &= met;
        lines.push(format!("  {:<7} {text}", if met { "met" } else { "MISSED" }));
    };

    let steady = round_trips(checked.steady_plan.wall, latency);
    line(steady <= targets.steady_plan_round_trips, format!("steady-state plan: {steady:.1} RTT <= {}", targets.steady_plan_round_trips));
    let per_object = checked.steady_plan.requests as f64 / checked.steady_plan.objects.max(1) as f64;
    line(
        per_object <= targets.steady_plan_requests_per_object,
        format!("steady-state plan: {per_object:.2} requests per managed object <= {}", targets.steady_plan_requests_per_object),
    );
    let apply = round_trips(checked.first_apply.wall, latency);
    line(apply <= targets.first_apply_round_trips, format!("first apply: {apply:.1} RTT <= {}", targets.first_apply_round_trips));
    let fleet = round_trips(checked.fleet_plan.wall, latency);
    line(fleet <= targets.fleet_plan_round_trips, format!("fleet plan: {fleet:.1} RTT <= {}", targets.fleet_plan_round_trips));
    line(checked.fleet_plan.throttled == 0, format!("fleet plan: {} throttled requests", checked.fleet_plan.throttled));

    let samples = checked.all.iter().flat_map(|row| std::iter::once(&row.concurrent).chain(&row.sequential));
    let peak_kib = samples.filter_map(|sample| sample.peak_rss_kib).max().unwrap_or(0);
    let peak_mib = peak_kib as f64 / 1024.0;
    line(peak_mib < targets.peak_rss_mib, format!("peak RSS of every run: {peak_mib:.1} MiB < {} MiB", targets.peak_rss_mib));

    (lines.join("\n"), all_met)
}

/// Describes the processor, memory and kernel from `/proc`.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, model)| model.trim().to_owned()))
        .unwrap_or_else(|| "unknown processor".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} CPUs available, {:.0} GiB memory, Linux {}", memory_kib as f64 / 1_048_576.0, kernel.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall_ms: u64, requests: u64, objects: usize, peak_rss_kib: u64) -> Sample {
        Sample {
            wall: Duration::from_millis(wall_ms),
            requests,
            throttled: 0,
            peak_scim_in_flight: 3,
            objects,
            peak_rss_kib: Some(peak_rss_kib),
            stdout: String::new(),
        }
    }

    fn targets() -> Targets {
        Targets {
            steady_plan_round_trips: 3.0,
            steady_plan_requests_per_object: 1.0,
            first_apply_round_trips: 10.0,
            fleet_plan_round_trips: 5.0,
            peak_rss_mib: 40.0,
        }
    }

    #[test]
    fn round_trips_divide_by_latency() {
        assert_eq!(round_trips(Duration::from_millis(150), Duration::from_millis(50)), 3.0);
    }

    #[test]
    fn table_shows_ratio_to_sequential() {
        let rows = vec![Row { label: "plan".to_owned(), concurrent: sample(100, 20, 40, 1024), sequential: Some(sample(1000, 20, 40, 1024)) }];
        let text = table(&rows, Duration::from_millis(50));
        let line = text.lines().nth(1).unwrap();
        assert!(line.contains(" 0.50 "), "{line}");
        assert!(line.contains("1.0 MiB"), "{line}");
        assert!(line.contains(" 20.0 "), "{line}");
        assert!(line.ends_with("10.0x"), "{line}");
    }

    #[test]
    fn check_reports_each_missed_target() {
        let steady = sample(200, 50, 40, 2048);
        let apply = sample(400, 100, 40, 2048);
        let fleet = sample(100, 300, 400, 50 * 1024);
        let rows = vec![Row { label: "fleet".to_owned(), concurrent: sample(100, 300, 400, 50 * 1024), sequential: None }];
        let checked = Checked { steady_plan: &steady, first_apply: &apply, fleet_plan: &fleet, all: &rows };
        let (text, all_met) = check(&targets(), &checked, Duration::from_millis(50));
        assert!(!all_met);
        assert!(text.contains("MISSED  steady-state plan: 4.0 RTT"), "{text}");
        assert!(text.contains("MISSED  steady-state plan: 1.25 requests"), "{text}");
        assert!(text.contains("met     first apply: 8.0 RTT"), "{text}");
        assert!(text.contains("MISSED  peak RSS of every run: 50.0 MiB"), "{text}");
    }
}
