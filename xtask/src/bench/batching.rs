//! `cargo xtask bench batching`: oxserve's dynamic batcher off and on, on a model where a
//! batch pays.
//!
//! One run, on loopback:
//! 1. builds `oxserve` and the load tools in release mode and makes the MLP (256-512-512-10,
//!    ReLU, seeded weights) and its one-row request with `fixtures/bench/make_models.py mlp`
//!    in the fixtures venv;
//! 2. for each `--settings` entry — `off` (no batcher) or `SIZE@DELAY_US`, written into the
//!    model's `model-settings.json` as `max_batch_size` and `max_batch_time` — starts
//!    `oxserve serve --threads 1` pinned to the server core, checks one answer (HTTP 200, a
//!    `[1, 10]` output), then drives V2 REST with `oha` from the other core at each
//!    concurrency (non-2xx answers and connection errors counted as errors);
//! 3. writes the table (throughput and p99 as ratios of the batcher-off run at the same
//!    concurrency, and the targets of the issue) to `.oxserve/bench/batching.md`, between the
//!    `bench batching` markers of `docs/benchmarks.md`, and renders the chart.
//!
//! Processes it starts are stopped by PID when the run ends, however it ends.

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use xshell::{Shell, cmd};

use super::server::{Measurement, OhaLoad, ensure_oha, http_post, ms, oha_post, start};

#[derive(clap::Args)]
pub struct Args {
    /// Measured time per (setting, concurrency), e.g. 5s.
    #[arg(long, default_value = "5s")]
    duration: String,
    /// Unmeasured warm-up before each measurement.
    #[arg(long, default_value = "1s")]
    warmup: String,
    /// Concurrency levels (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    concurrency: Vec<u32>,
    /// Batcher settings: `off`, or `SIZE@DELAY_US` (`max_batch_size`, `max_batch_time` in µs).
    #[arg(long, value_delimiter = ',', default_value = "off,8@0,64@0,64@500,64@2000")]
    settings: Vec<String>,
    /// Core the server is pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: u32,
    /// Core the load generator is pinned to.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Leave `docs/benchmarks.md` and the chart alone; write only under `.oxserve/bench/`.
    #[arg(long)]
    no_docs: bool,
}

/// The served model name (the directory name).
const MODEL: &str = "mlp-bench";

/// Where the chart goes, relative to the project root.
const CHART: &str = "docs/benchmarks-batching.svg";

/// Issue targets, reported against (never asserted).
const THROUGHPUT_TARGET: f64 = 4.0;
const P99_TARGET: f64 = 2.0;
const ADDED_AT_C1_TARGET_US: i64 = 10;

/// A batcher setting.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Setting {
    Off,
    On { size: usize, delay_us: u64 },
}

impl Setting {
    fn parse(text: &str) -> Result<Setting> {
        if text == "off" {
            return Ok(Setting::Off);
        }
        let Some((size, delay)) = text.split_once('@') else {
            bail!("setting {text:?}: expected `off` or SIZE@DELAY_US");
        };
        let size = size.parse().with_context(|| format!("setting {text:?}: size"))?;
        let delay_us = delay.parse().with_context(|| format!("setting {text:?}: delay"))?;
        ensure!(size > 1, "setting {text:?}: a batch needs a size above 1");
        Ok(Setting::On { size, delay_us })
    }

    fn name(self) -> String {
        match self {
            Setting::Off => "batcher off".to_owned(),
            Setting::On { size, delay_us } => format!("size {size}, delay {delay_us} µs"),
        }
    }

    /// The `model-settings.json` of this setting.
    fn model_settings(self) -> String {
        match self {
            Setting::Off => "{}".to_owned(),
            Setting::On { size, delay_us } => format!(
                r#"{{"max_batch_size": {size}, "max_batch_time": {}}}"#,
                delay_us as f64 / 1e6
            ),
        }
    }
}

struct Row {
    setting: Setting,
    concurrency: u32,
    m: Measurement,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args { duration, warmup, concurrency, settings, server_cpu, load_cpu, no_docs } = args;
    ensure!(!concurrency.is_empty(), "--concurrency needs at least one level");
    let settings: Vec<Setting> =
        settings.iter().map(|s| Setting::parse(s)).collect::<Result<_>>()?;
    ensure!(settings.contains(&Setting::Off), "--settings needs `off`, the baseline");
    let machine_before = super::machine_description();
    let lib = crate::onnxruntime::ensure(sh)?;
    let oha = ensure_oha(sh)?;
    cmd!(sh, "cargo build --release -p oxserve-cli -p oxserve-loadtest")
        .run()
        .context("building oxserve and the load tools")?;
    let bin = super::target_dir().join("release");
    let python =
        crate::venv::ensure(sh, "fixtures", include_str!("../../../fixtures/requirements.txt"))?;
    let dir = crate::state_dir().join("bench").join("batching");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let data = dir.join("model");
    let script = crate::project_root().join("fixtures/bench/make_models.py");
    cmd!(sh, "{python} {script} mlp {data}").run().context("making the MLP")?;
    let request = data.join("request-1.json");
    let body = std::fs::read_to_string(&request)?;
    let (server_cpu, load_cpu) = (server_cpu.to_string(), load_cpu.to_string());

    let mut rows = Vec::new();
    for (i, &setting) in settings.iter().enumerate() {
        eprintln!("xtask: oxserve, {}", setting.name());
        let repo = dir.join(format!("repo-{i}")).join(MODEL);
        std::fs::create_dir_all(&repo)?;
        std::fs::copy(data.join("model.onnx"), repo.join("model.onnx"))?;
        std::fs::write(repo.join("model-settings.json"), setting.model_settings())?;
        let mut serve = std::process::Command::new("taskset");
        serve
            .args(["-c", &server_cpu])
            .arg(bin.join("oxserve"))
            .arg("serve")
            .arg(&repo)
            .args(["--http-port", "0", "--grpc-port", "0", "--threads", "1"])
            .env("OXSERVE_ONNXRUNTIME_LIB", &lib);
        let (guard, rest, _grpc) =
            start(serve, &dir.join(format!("oxserve-{i}.log")), "oxserve listening ")?;
        let path = format!("/v2/models/{MODEL}/infer");
        check_answer(&http_post(&rest, &path, &body)?)
            .with_context(|| format!("{}: the answer", setting.name()))?;
        let url = format!("{rest}{path}");
        for &c in &concurrency {
            let c_text = c.to_string();
            let once = |time: &str| {
                let load = OhaLoad { time, concurrency: &c_text, rate: None };
                oha_post(sh, &oha, &load_cpu, load, &request, &url)
            };
            once(&warmup)?;
            let m = once(&duration)?;
            eprintln!(
                "xtask:   c={c}: {:.0} req/s, p50 {} µs, p99 {} µs, {} errors",
                m.rps, m.p50_us, m.p99_us, m.errors
            );
            rows.push(Row { setting, concurrency: c, m });
        }
        drop(guard);
    }

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let mut report = format!(
        "Command: `cargo xtask bench batching --duration {duration} --warmup {warmup} \
         --concurrency {} --settings {}`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Pinning: oxserve (`--threads 1`) on core {server_cpu}, `oha` on core {load_cpu}; \
         {warmup} warm-up before each {duration} run  \n\
         Commit: {commit}; model: MLP 256-512-512-10 (ONNX, `fixtures/bench/make_models.py \
         mlp`); request: 1 row, JSON over REST\n\n",
        concurrency.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        settings.iter().map(|s| setting_arg(*s)).collect::<Vec<_>>().join(","),
        super::load_average(),
    );
    report.push_str(&table(&rows));
    println!("\n{report}");
    let out = crate::state_dir().join("bench").join("batching.md");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    println!("written to {}", out.display());
    if !no_docs {
        let chart_json = dir.join("chart.json");
        std::fs::write(&chart_json, serde_json::to_string_pretty(&chart_data(&rows))?)?;
        super::publish(sh, &bin, "batching", &report, &chart_json, CHART)?;
    }
    Ok(())
}

fn setting_arg(s: Setting) -> String {
    match s {
        Setting::Off => "off".to_owned(),
        Setting::On { size, delay_us } => format!("{size}@{delay_us}"),
    }
}

/// The answer must hold one `[1, 10]` output.
fn check_answer(body: &[u8]) -> Result<()> {
    let v: Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    let shape = &v["outputs"][0]["shape"];
    ensure!(*shape == json!([1, 10]), "output shape {shape}, expected [1, 10]");
    Ok(())
}

fn baseline(rows: &[Row], c: u32) -> Option<&Row> {
    rows.iter().find(|r| r.setting == Setting::Off && r.concurrency == c)
}

/// The table, with each row's throughput and p99 as ratios of the batcher-off run at the
/// same concurrency, and the targets.
fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| setting | concurrency | req/s | p50 | p99 | errors | req/s ÷ off | p99 ÷ off |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (x, p) = match baseline(rows, r.concurrency) {
            Some(b) if b.m.rps > 0.0 && b.m.p99_us > 0 => (
                format!("{:.2}×", r.m.rps / b.m.rps),
                format!("{:.2}×", r.m.p99_us as f64 / b.m.p99_us as f64),
            ),
            _ => ("–".to_owned(), "–".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} | {x} | {p} |\n",
            r.setting.name(),
            r.concurrency,
            r.m.rps,
            ms(r.m.p50_us),
            ms(r.m.p99_us),
            r.m.errors,
        ));
    }
    out.push_str("\nTargets (reported, not asserted):\n");
    let verdict = |met: bool| if met { "met" } else { "missed" };
    if let Some(off) = baseline(rows, 64) {
        let best = rows
            .iter()
            .filter(|r| r.concurrency == 64 && r.setting != Setting::Off)
            .max_by(|a, b| a.m.rps.total_cmp(&b.m.rps));
        if let Some(best) = best {
            let x = best.m.rps / off.m.rps.max(f64::MIN_POSITIVE);
            let p = best.m.p99_us as f64 / off.m.p99_us.max(1) as f64;
            out.push_str(&format!(
                "- c=64, best setting ({}): ≥ {THROUGHPUT_TARGET}× the unbatched throughput with \
                 p99 ≤ {P99_TARGET}× the unbatched p99: {x:.2}×, p99 {p:.2}× → {}\n",
                best.setting.name(),
                verdict(x >= THROUGHPUT_TARGET && p <= P99_TARGET)
            ));
        }
    }
    if let Some(off) = baseline(rows, 1) {
        // The default settings: a batch size and no added delay.
        let default = rows
            .iter()
            .find(|r| r.concurrency == 1 && matches!(r.setting, Setting::On { delay_us: 0, .. }));
        if let Some(d) = default {
            let added = d.m.p50_us as i64 - off.m.p50_us as i64;
            out.push_str(&format!(
                "- c=1, {} (no delay): ≤ {ADDED_AT_C1_TARGET_US} µs added to the median: \
                 {added:+} µs → {}\n",
                d.setting.name(),
                verdict(added <= ADDED_AT_C1_TARGET_US)
            ));
        }
    }
    out
}

/// One series per setting, one point per concurrency: throughput against median latency.
fn chart_data(rows: &[Row]) -> Value {
    let mut settings: Vec<Setting> = Vec::new();
    for r in rows {
        if !settings.contains(&r.setting) {
            settings.push(r.setting);
        }
    }
    let series: Vec<Value> = settings
        .iter()
        .map(|&s| {
            let points: Vec<Value> = rows
                .iter()
                .filter(|r| r.setting == s)
                .map(|r| {
                    json!({
                        "label": format!("c={}", r.concurrency),
                        "x": r.m.rps,
                        "y": r.m.p50_us as f64 / 1000.0,
                    })
                })
                .collect();
            json!({ "name": s.name(), "points": points })
        })
        .collect();
    json!({
        "title": "MLP 256-512-512-10, 1 row per request, oxserve on one core",
        "x_label": "throughput (req/s, log scale)",
        "y_label": "median latency (ms, log scale)",
        "series": series,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        assert_eq!(Setting::parse("off").unwrap(), Setting::Off);
        assert_eq!(Setting::parse("64@500").unwrap(), Setting::On { size: 64, delay_us: 500 });
        assert!(Setting::parse("64").is_err());
        assert!(Setting::parse("1@0").is_err());
        assert_eq!(
            Setting::parse("32@2000").unwrap().model_settings(),
            r#"{"max_batch_size": 32, "max_batch_time": 0.002}"#
        );
    }

    #[test]
    fn table_and_targets() {
        let m = |rps, p50_us, p99_us| Measurement { rps, p50_us, p99_us, errors: 0 };
        let on = Setting::On { size: 64, delay_us: 0 };
        let rows = [
            Row { setting: Setting::Off, concurrency: 1, m: m(1000.0, 900, 1200) },
            Row { setting: Setting::Off, concurrency: 64, m: m(1000.0, 60000, 70000) },
            Row { setting: on, concurrency: 1, m: m(990.0, 905, 1200) },
            Row { setting: on, concurrency: 64, m: m(5000.0, 12000, 14000) },
        ];
        let t = table(&rows);
        assert!(
            t.contains(
                "| size 64, delay 0 µs | 64 | 5000 | 12.00 ms | 14.00 ms | 0 | 5.00× | 0.20× |"
            ),
            "{t}"
        );
        assert!(t.contains("5.00×, p99 0.20× → met"), "{t}");
        assert!(t.contains("+5 µs → met"), "{t}");
    }
}
