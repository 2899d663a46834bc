//! The result of a run and its four renderings: a text table with a summary line per level
//! (for people), JSON (for tools), JUnit XML (for CI) and Markdown (for docs).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::catalog::{Level, Outcome, Transport};

/// How one case ended.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Stable case ID.
    pub id: String,
    /// Its level.
    pub level: Level,
    /// Its transport.
    pub transport: Transport,
    /// Specification section.
    pub section: &'static str,
    /// The clause in our words.
    pub clause: String,
    /// Pass, fail or skip with the reason.
    pub outcome: Outcome,
    /// How long the check took.
    pub millis: u64,
}

/// Counts for one level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Passed cases.
    pub passed: usize,
    /// Failed cases.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
}

impl Tally {
    /// Passed out of run (passed + failed), as a percentage; `None` when nothing ran.
    pub fn pass_rate(&self) -> Option<f64> {
        let run = self.passed + self.failed;
        (run > 0).then(|| 100.0 * self.passed as f64 / run as f64)
    }
}

/// The outcome of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// REST base URL.
    pub rest: String,
    /// gRPC address, if given.
    pub grpc: Option<String>,
    /// Model under test.
    pub model: String,
    /// Extensions the server advertised.
    pub extensions: Vec<String>,
    /// Reference models the server serves.
    pub reference_models: Vec<String>,
    /// What discovery noticed.
    pub notes: Vec<String>,
    /// One result per case run.
    pub results: Vec<CaseResult>,
}

/// Output format of a report (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A readable table with a summary line per level.
    #[default]
    Text,
    /// The [`Report`] as JSON.
    Json,
    /// JUnit XML, one test case per case.
    Junit,
    /// Markdown tables.
    Markdown,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "junit" => Ok(Format::Junit),
            "markdown" | "md" => Ok(Format::Markdown),
            other => Err(format!("unknown format \"{other}\" (text, json, junit or markdown)")),
        }
    }
}

impl Report {
    /// Failures that make the run fail: MUST cases and cases of advertised extensions.
    pub fn gating_failures(&self) -> Vec<&CaseResult> {
        self.results
            .iter()
            .filter(|r| r.level.gates() && matches!(r.outcome, Outcome::Fail(_)))
            .collect()
    }

    /// True when no MUST or advertised-extension case failed.
    pub fn conforms(&self) -> bool {
        self.gating_failures().is_empty()
    }

    /// The result of case `id`.
    pub fn result(&self, id: &str) -> Option<&CaseResult> {
        self.results.iter().find(|r| r.id == id)
    }

    /// Counts per level, MUST first, then SHOULD, MAY and the extensions by name.
    pub fn tallies(&self) -> BTreeMap<Level, Tally> {
        let mut out: BTreeMap<Level, Tally> = BTreeMap::new();
        for r in &self.results {
            let t = out.entry(r.level).or_default();
            match r.outcome {
                Outcome::Pass => t.passed += 1,
                Outcome::Fail(_) => t.failed += 1,
                Outcome::Skip(_) => t.skipped += 1,
            }
        }
        out
    }

    /// One line per level: `MUST  41 passed, 0 failed, 2 skipped (100.0 %)`.
    pub fn summary_lines(&self) -> Vec<String> {
        self.tallies()
            .into_iter()
            .map(|(level, t)| {
                let rate = t.pass_rate().map(|r| format!(" ({r:.1} % of run)")).unwrap_or_default();
                format!(
                    "{:<30} {} passed, {} failed, {} skipped{rate}",
                    level.to_string(),
                    t.passed,
                    t.failed,
                    t.skipped
                )
            })
            .collect()
    }

    /// `CONFORMS: …` or `DOES NOT CONFORM: n … failed`.
    pub fn verdict(&self) -> String {
        let failures = self.gating_failures().len();
        if failures == 0 {
            "CONFORMS: every MUST and advertised-extension case passed".to_owned()
        } else {
            format!("DOES NOT CONFORM: {failures} MUST or advertised-extension case(s) failed")
        }
    }

    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
            Format::Junit => self.junit(),
            Format::Markdown => self.markdown(),
        }
    }

    fn header_lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("REST        {}", self.rest),
            format!("gRPC        {}", self.grpc.as_deref().unwrap_or("(not given)")),
            format!("model       {}", self.model),
            format!("extensions  {}", join_or_none(&self.extensions)),
            format!("reference   {}", join_or_none(&self.reference_models)),
        ];
        lines.extend(self.notes.iter().map(|n| format!("note        {n}")));
        lines
    }

    fn text(&self) -> String {
        let mut out = String::new();
        for line in self.header_lines() {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
        let id_width = self.results.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
        let level_width =
            self.results.iter().map(|r| r.level.to_string().len()).max().unwrap_or(5).max(5);
        let _ = writeln!(
            out,
            "{:<4}  {:<level_width$}  {:<4}  {:<id_width$}  REASON",
            "", "LEVEL", "VIA", "CASE"
        );
        for r in &self.results {
            let mark = match r.outcome {
                Outcome::Pass => "ok",
                Outcome::Fail(_) => "FAIL",
                Outcome::Skip(_) => "skip",
            };
            let _ = writeln!(
                out,
                "{mark:<4}  {:<level_width$}  {:<4}  {:<id_width$}  {}",
                r.level.to_string(),
                r.transport.to_string(),
                r.id,
                one_line(r.outcome.reason())
            );
        }
        out.push('\n');
        for line in self.summary_lines() {
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "{}", self.verdict());
        out
    }

    fn junit(&self) -> String {
        let t = self.results.iter().fold(Tally::default(), |mut t, r| {
            match r.outcome {
                Outcome::Pass => t.passed += 1,
                Outcome::Fail(_) => t.failed += 1,
                Outcome::Skip(_) => t.skipped += 1,
            }
            t
        });
        let total_ms: u64 = self.results.iter().map(|r| r.millis).sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuites name=\"v2-conformance\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            self.results.len(),
            t.failed,
            t.skipped,
            total_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            xml(&format!("{} ({})", self.rest, self.model)),
            self.results.len(),
            t.failed,
            t.skipped,
            total_ms as f64 / 1000.0
        );
        for r in &self.results {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&r.transport.to_string()),
                xml(&r.level.to_string()),
                xml(&r.id),
                r.millis as f64 / 1000.0
            );
            match &r.outcome {
                Outcome::Pass => out.push_str("/>\n"),
                Outcome::Fail(reason) => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{} ({}): {}</failure>\n    </testcase>",
                        xml(reason),
                        xml(&r.clause),
                        xml(r.section),
                        xml(reason)
                    );
                }
                Outcome::Skip(reason) => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(reason)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| | |\n|---|---|");
        for line in self.header_lines() {
            let (k, v) = line.split_once(' ').unwrap_or((&line, ""));
            let _ = writeln!(out, "| {k} | {} |", md(v.trim()));
        }
        let _ = writeln!(
            out,
            "\n| level | passed | failed | skipped | pass rate |\n|---|---:|---:|---:|---:|"
        );
        for (level, t) in self.tallies() {
            let rate = t.pass_rate().map(|r| format!("{r:.1} %")).unwrap_or_else(|| "–".into());
            let _ =
                writeln!(out, "| {level} | {} | {} | {} | {rate} |", t.passed, t.failed, t.skipped);
        }
        let _ = writeln!(out, "\n**{}**\n", self.verdict());
        let _ = writeln!(
            out,
            "| result | level | via | case | clause | reason |\n|---|---|---|---|---|---|"
        );
        for r in &self.results {
            let _ = writeln!(
                out,
                "| {} | {} | {} | `{}` | {} ({}) | {} |",
                r.outcome.label(),
                r.level,
                r.transport,
                r.id,
                md(&r.clause),
                md(r.section),
                md(r.outcome.reason())
            );
        }
        out
    }
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() { "(none)".to_owned() } else { items.join(", ") }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn md(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let result = |id: &str, level, outcome| CaseResult {
            id: id.into(),
            level,
            transport: Transport::Rest,
            section: "Health",
            clause: "a <clause> & more".into(),
            outcome,
            millis: 3,
        };
        Report {
            rest: "http://127.0.0.1:1".into(),
            grpc: None,
            model: "m".into(),
            extensions: vec![],
            reference_models: vec![],
            notes: vec![],
            results: vec![
                result("rest.a", Level::Must, Outcome::Pass),
                result("rest.b", Level::Should, Outcome::Fail("said \"no\"".into())),
                result("rest.c", Level::Extension("statistics"), Outcome::Skip("n/a".into())),
            ],
        }
    }

    #[test]
    fn should_failures_do_not_gate() {
        let mut r = sample();
        assert!(r.conforms());
        r.results[0].outcome = Outcome::Fail("x".into());
        assert!(!r.conforms());
    }

    #[test]
    fn every_format_renders() {
        let r = sample();
        let text = r.render(Format::Text);
        assert!(text.contains("MUST") && text.contains("1 passed, 0 failed, 0 skipped"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.render(Format::Json)).unwrap();
        assert_eq!(json["results"][1]["outcome"]["status"], "fail");
        let junit = r.render(Format::Junit);
        assert!(
            junit.contains("&lt;clause&gt; &amp; more") && junit.contains("<skipped"),
            "{junit}"
        );
        assert!(r.render(Format::Markdown).contains("| fail | SHOULD | REST | `rest.b` |"));
    }
}
