//! A scenario's report in `--report DIR`: `report.json` (every sample, tick and event, the
//! per-second series, the figures and the criteria), `summary.md` (a verdict per criterion)
//! and `timeline.svg` (replicas and load in flight, activator queue depth, latency
//! percentiles and the split per revision, over time).

use std::collections::BTreeSet;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::analysis::{Second, per_second};
use crate::record::{Event, Sample, Tick};
use crate::verdict::{Criterion, Outcome, all_passed};

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    /// The command line and parameters, for reproduction.
    pub command: String,
    /// Free-form figures of the scenario (throughput tables, load times, …).
    pub figures: serde_json::Value,
    pub criteria: Vec<Criterion>,
    pub passed: bool,
    pub events: Vec<Event>,
    pub seconds: Vec<Second>,
    pub ticks: Vec<Tick>,
    pub samples: Vec<Sample>,
}

impl Report {
    pub fn new(
        scenario: &str,
        target: &str,
        command: &str,
        figures: serde_json::Value,
        criteria: Vec<Criterion>,
        (samples, ticks, events): (Vec<Sample>, Vec<Tick>, Vec<Event>),
    ) -> Report {
        Report {
            scenario: scenario.into(),
            target: target.into(),
            command: command.into(),
            figures,
            passed: all_passed(&criteria),
            criteria,
            events,
            seconds: per_second(&samples),
            ticks,
            samples,
        }
    }

    /// The Markdown summary.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Load test `{}`: {}\n\nTarget: {}  \nCommand: `{}`  \nRequests: {} ({} failed)\n\n",
            self.scenario,
            if self.passed { "PASS" } else { "FAIL" },
            self.target,
            self.command,
            self.samples.len(),
            self.samples.iter().filter(|s| !s.ok()).count(),
        );
        s.push_str("| criterion | expected | measured | verdict |\n|---|---|---|---|\n");
        for c in &self.criteria {
            let verdict = match c.outcome {
                Outcome::Pass => "pass",
                Outcome::Fail => "**FAIL**",
                Outcome::Skipped => "skipped",
            };
            s.push_str(&format!(
                "| {} | {} | {} | {verdict} |\n",
                cell(&c.name),
                cell(&c.expected),
                cell(&c.measured)
            ));
        }
        if !self.figures.is_null() {
            s.push_str(&format!(
                "\nFigures:\n\n```json\n{}\n```\n",
                serde_json::to_string_pretty(&self.figures).unwrap_or_default()
            ));
        }
        if !self.events.is_empty() {
            s.push_str("\nEvents:\n\n");
            for e in &self.events {
                s.push_str(&format!("- {:.1} s: {}\n", e.t_ms / 1000.0, e.what));
            }
        }
        s.push_str("\nTimeline: `timeline.svg`; every sample: `report.json`.\n");
        s
    }

    /// Writes `report.json`, `summary.md` and `timeline.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let json = serde_json::to_string(self).map_err(|e| format!("encoding the report: {e}"))?;
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
        };
        write("report.json", &json)?;
        write("summary.md", &self.markdown())?;
        timeline(self, &dir.join("timeline.svg"))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Renders the timeline: three panels sharing the time axis.
pub fn timeline(report: &Report, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", path.display());
    let end_s = report
        .ticks
        .iter()
        .map(|t| t.t_ms / 1000.0)
        .chain(report.samples.iter().map(|s| s.end_ms() / 1000.0))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (1000, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(&format!("{} — {}", report.scenario, report.target), ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    let panels = root.split_evenly((3, 1));

    // 1. Replicas per revision (ready), desired in total, requests in flight.
    let revisions: BTreeSet<&str> =
        report.ticks.iter().flat_map(|t| t.revisions.iter().map(|r| r.name.as_str())).collect();
    let top = report
        .ticks
        .iter()
        .map(|t| {
            (t.desired().max(t.ready()) as f64)
                .max(t.in_flight as f64)
                .max(t.kpa_panic().unwrap_or(0.0))
                .max(t.kpa_stable().unwrap_or(0.0))
        })
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&panels[0])
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .caption("replicas and requests in flight", ("sans-serif", 14))
        .build_cartesian_2d(0.0..end_s, 0.0..top * 1.1)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("s").draw().map_err(|e| err(&e))?;
    let mut color = 0;
    let mut line = |chart: &mut ChartContext<_, _>,
                    name: String,
                    xy: Vec<(f64, f64)>|
     -> Result<(), String> {
        let c = Palette99::pick(color).mix(1.0);
        color += 1;
        chart
            .draw_series(LineSeries::new(xy, c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        Ok(())
    };
    for rev in &revisions {
        let xy = report
            .ticks
            .iter()
            .map(|t| {
                let ready = t.revisions.iter().find(|r| r.name == *rev).map_or(0, |r| r.ready);
                (t.t_ms / 1000.0, ready as f64)
            })
            .collect();
        line(&mut chart, format!("{rev} ready"), xy)?;
    }
    let desired = report.ticks.iter().map(|t| (t.t_ms / 1000.0, t.desired() as f64)).collect();
    line(&mut chart, "desired (all revisions)".into(), desired)?;
    let inflight = report.ticks.iter().map(|t| (t.t_ms / 1000.0, t.in_flight as f64)).collect();
    line(&mut chart, "requests in flight (client)".into(), inflight)?;
    for (name, pick) in [
        ("in flight at the router: KPA stable average", Tick::kpa_stable as fn(&Tick) -> _),
        ("in flight at the router: KPA panic average", Tick::kpa_panic),
    ] {
        let xy: Vec<(f64, f64)> =
            report.ticks.iter().filter_map(|t| Some((t.t_ms / 1000.0, pick(t)?))).collect();
        if !xy.is_empty() {
            line(&mut chart, name.into(), xy)?;
        }
    }
    legend(&mut chart).map_err(|e| err(&e))?;

    // 2. Latency percentiles per second, and the activator queue depth on its own scale.
    let lat_top = report.seconds.iter().map(|s| s.p99_ms).fold(1.0_f64, f64::max);
    let q_top = report.ticks.iter().map(|t| t.queue_depth as f64).fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&panels[1])
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .right_y_label_area_size(50)
        .caption(
            "latency per second (ms, left) and activator queue depth (right)",
            ("sans-serif", 14),
        )
        .build_cartesian_2d(0.0..end_s, 0.0..lat_top * 1.1)
        .map_err(|e| err(&e))?
        .set_secondary_coord(0.0..end_s, 0.0..q_top * 1.1);
    chart.configure_mesh().x_desc("s").y_desc("ms").draw().map_err(|e| err(&e))?;
    chart.configure_secondary_axes().y_desc("queued").draw().map_err(|e| err(&e))?;
    for (i, (name, pick)) in
        [("p50", (|s: &Second| s.p50_ms) as fn(&Second) -> f64), ("p99", |s: &Second| s.p99_ms)]
            .into_iter()
            .enumerate()
    {
        let c = Palette99::pick(i).mix(1.0);
        let xy: Vec<(f64, f64)> =
            report.seconds.iter().map(|s| (s.t_s as f64 + 0.5, pick(s))).collect();
        chart
            .draw_series(LineSeries::new(xy, c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    let c = Palette99::pick(5).mix(1.0);
    let xy: Vec<(f64, f64)> =
        report.ticks.iter().map(|t| (t.t_ms / 1000.0, t.queue_depth as f64)).collect();
    chart
        .draw_secondary_series(LineSeries::new(xy, c.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("queue depth")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // 3. The split: each revision's share of the successful answers per second.
    let mut chart = ChartBuilder::on(&panels[2])
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .caption(
            "split per second (% of successful answers, x-oxserve-revision)",
            ("sans-serif", 14),
        )
        .build_cartesian_2d(0.0..end_s, 0.0..105.0)
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("s").y_desc("%").draw().map_err(|e| err(&e))?;
    let answered: BTreeSet<&str> =
        report.seconds.iter().flat_map(|s| s.split.keys().map(String::as_str)).collect();
    for (i, rev) in answered.iter().enumerate() {
        let c = Palette99::pick(i).mix(1.0);
        let xy: Vec<(f64, f64)> = report
            .seconds
            .iter()
            .map(|s| {
                let total: u64 = s.split.values().sum();
                let n = *s.split.get(*rev).unwrap_or(&0);
                (s.t_s as f64 + 0.5, if total == 0 { 0.0 } else { 100.0 * n as f64 / total as f64 })
            })
            .collect();
        chart
            .draw_series(LineSeries::new(xy, c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(rev.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    legend(&mut chart).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::stream;
    use crate::record::RevisionTick;

    #[test]
    fn writes_json_markdown_and_svg() {
        let samples = stream(0.0, 300, 10.0, "v2", "v1", 10);
        let ticks = (0..4)
            .map(|i| Tick {
                t_ms: i as f64 * 1000.0,
                revisions: vec![RevisionTick {
                    name: "v1".into(),
                    ready: 1,
                    desired: 2,
                    traffic: 90,
                    kpa_stable: Some(2.5),
                    kpa_panic: None,
                }],
                in_flight: 3,
                queue_depth: i,
            })
            .collect();
        let events = vec![Event { t_ms: 1000.0, what: "apply 10 %".into() }];
        let criteria = vec![
            Criterion::check("split", "10 %", "10 %", true),
            Criterion::check("no failed | request", "0", "2", false),
        ];
        let report = Report::new(
            "canary",
            "local",
            "cargo xtask loadtest canary",
            serde_json::json!({"rps": 100}),
            criteria,
            (samples, ticks, events),
        );
        assert!(!report.passed);
        let dir = std::env::temp_dir().join(format!("oxserve-report-{}", std::process::id()));
        report.write(&dir).unwrap();
        let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(
            md.contains("`canary`: FAIL")
                && md.contains("no failed \\| request")
                && md.contains("**FAIL**"),
            "{md}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["samples"].as_array().unwrap().len(), 300);
        assert_eq!(json["seconds"][0]["split"]["v2"], 10);
        let svg = std::fs::read_to_string(dir.join("timeline.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("v1 ready") && svg.contains("queue depth"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
