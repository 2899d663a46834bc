//! `cargo xtask bench overload`: the server at 5× its measured capacity, with tiny and 1 MiB
//! request bodies mixed.
//!
//! One run, on loopback:
//! 1. builds `oxserve` and `oxserve-overload` in release mode;
//! 2. starts `oxserve serve` on the xgb-binary fixture pinned to `--server-cpu` with the
//!    admission limits given (`--max-inflight-per-model`, `--max-queue-per-model`);
//! 3. `oxserve-overload` (pinned to `--load-cpu`) measures the unloaded latencies (one
//!    request at a time), the capacity (closed loop), then offers `--factor` × that capacity
//!    open-loop, sampling the server's RSS every 100 ms throughout;
//! 4. reports, side by side: peak RSS against the stated bound, the accepted requests' p99
//!    against the unloaded p99 (target ≤ 2×), the share shed with 503/429, and whether the
//!    server was alive at the end; the report goes between the markers of this command in
//!    `docs/benchmarks.md`.
//!
//! It measures and reports; it asserts no figure. The server is stopped by PID when the
//! run ends, however it ends.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use xshell::{Shell, cmd};

use super::server::{http_post, start};

#[derive(clap::Args)]
pub struct Args {
    /// Duration of each phase (unloaded, capacity, overload), e.g. 10s.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Offered load in the overload phase as a multiple of the measured capacity.
    #[arg(long, default_value_t = 5.0)]
    factor: f64,
    /// Share of requests with the large body.
    #[arg(long, default_value_t = 0.05)]
    large_share: f64,
    /// Size of the large body in bytes (rows of the model's input as JSON).
    #[arg(long, default_value_t = 1 << 20)]
    large_bytes: usize,
    /// The server's worker threads.
    #[arg(long, default_value_t = 1)]
    server_threads: usize,
    /// `--max-inflight-per-model` of the server.
    #[arg(long, default_value_t = 2)]
    max_inflight_per_model: usize,
    /// `--max-queue-per-model` of the server.
    #[arg(long, default_value_t = 2)]
    max_queue_per_model: usize,
    /// Requests in flight while capacity is measured (default: in-flight + queue).
    #[arg(long)]
    capacity_concurrency: Option<usize>,
    /// Core the server is pinned to.
    #[arg(long, default_value_t = 0)]
    server_cpu: u32,
    /// Core the load generator is pinned to.
    #[arg(long, default_value_t = 1)]
    load_cpu: u32,
    /// Put the report into docs/benchmarks.md.
    #[arg(long)]
    publish: bool,
}

const MODEL: &str = "xgb";
const ROW: &str = "[0.5,1.5,-2.0,3.25,0.0,1.0,2.0,-1.0,0.25,4.0]";
/// Target for the accepted requests' p99 under overload, as a multiple of the unloaded p99.
const P99_TARGET_RATIO: f64 = 2.0;

/// A request of `rows` rows for the xgb-binary fixture.
fn body(rows: usize) -> String {
    let data = vec![ROW; rows].join(",");
    format!(
        r#"{{"inputs":[{{"name":"input-0","shape":[{rows},10],"datatype":"FP32","data":[{data}]}}]}}"#
    )
}

/// The RSS the server should stay under: what it uses idle, plus for every request it may
/// hold (in flight or queued) eight times the large body (the body, its decoded tensor, the
/// batch and the encoded answer, with room to spare), plus 64 MiB for connection buffers
/// and the allocator's slack.
fn rss_bound(idle: u64, held: usize, large_bytes: usize) -> u64 {
    idle + (held as u64) * 8 * large_bytes as u64 + (64 << 20)
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    let Args {
        duration,
        factor,
        large_share,
        large_bytes,
        server_threads,
        max_inflight_per_model,
        max_queue_per_model,
        capacity_concurrency,
        server_cpu,
        load_cpu,
        publish,
    } = args;
    ensure!(max_inflight_per_model > 0, "--max-inflight-per-model must be at least 1");
    let capacity_concurrency =
        capacity_concurrency.unwrap_or(max_inflight_per_model + max_queue_per_model);
    let machine_before = super::machine_description();
    cmd!(sh, "cargo build --release -p oxserve-cli -p oxserve-loadtest --bin oxserve --bin oxserve-overload")
        .run()
        .context("building oxserve and oxserve-overload")?;
    let bin = super::target_dir().join("release");
    let (oxserve, overload) = (bin.join("oxserve"), bin.join("oxserve-overload"));
    let dir = crate::state_dir().join("bench").join("overload");
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join(MODEL))
        .with_context(|| format!("creating {}", repo.display()))?;
    std::fs::copy(
        crate::project_root().join("fixtures/models/xgb-binary/model.json"),
        repo.join(MODEL).join("model.json"),
    )
    .context("copying the xgb-binary fixture")?;
    let tiny = body(1);
    let large_rows = (large_bytes / (ROW.len() + 1)).max(1);
    let large = body(large_rows);
    let (tiny_file, large_file) = (dir.join("tiny.json"), dir.join("large.json"));
    std::fs::write(&tiny_file, &tiny)?;
    std::fs::write(&large_file, &large)?;

    let mut serve = Command::new("taskset");
    serve
        .args(["-c", &server_cpu.to_string()])
        .arg(&oxserve)
        .arg("serve")
        .arg(&repo)
        .args(["--http-port", "0", "--grpc-port", "0"])
        .args(["--threads", &server_threads.to_string()])
        .args(["--max-inflight-per-model", &max_inflight_per_model.to_string()])
        .args(["--max-queue-per-model", &max_queue_per_model.to_string()])
        .env("OXSERVE_LOG", "warn");
    let (guard, rest, _) = start(serve, &dir.join("oxserve.log"), "oxserve listening ")?;
    let pid = guard.0.id().to_string();
    let infer = format!("/v2/models/{MODEL}/infer");
    http_post(&rest, &infer, &tiny).context("a first request")?;
    http_post(&rest, &infer, &large).context("a first large request")?;

    let (load_cpu_text, share, fct, cc) = (
        load_cpu.to_string(),
        large_share.to_string(),
        factor.to_string(),
        capacity_concurrency.to_string(),
    );
    let url = format!("{rest}{infer}");
    eprintln!("xtask: unloaded, capacity and {factor}× overload, {duration} each");
    let out = cmd!(
        sh,
        "taskset -c {load_cpu_text} {overload} --url {url} --tiny {tiny_file} --large {large_file} --large-share {share} --pid {pid} --duration {duration} --capacity-concurrency {cc} --factor {fct}"
    )
    .read()
    .context("running oxserve-overload")?;
    let alive_after = std::path::Path::new(&format!("/proc/{pid}")).exists();
    drop(guard);
    let r: Value = serde_json::from_str(out.trim()).context("parsing oxserve-overload's output")?;

    let commit = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
    let held = max_inflight_per_model + max_queue_per_model;
    let idle = r["idle_rss_bytes"].as_u64().unwrap_or(0);
    let bound = rss_bound(idle, held, large.len());
    let mut report = format!(
        "Command: `cargo xtask bench overload --duration {duration} --factor {factor} --large-share {large_share} --large-bytes {large_bytes} --server-threads {server_threads} --max-inflight-per-model {max_inflight_per_model} --max-queue-per-model {max_queue_per_model} --server-cpu {server_cpu} --load-cpu {load_cpu}`  \n\
         Machine: {machine_before} (at start; {} at the end)  \n\
         Commit: {commit}; model: the xgb-binary fixture; bodies: 1 row ({} B) and {large_rows} rows ({} B) of JSON, \
         every {}th request large; capacity measured closed-loop at {capacity_concurrency} in flight; the overload is open-loop\n\n",
        super::load_average(),
        tiny.len(),
        large.len(),
        (1.0 / large_share).round(),
    );
    report.push_str(&table(&r));
    let p99 = |phase: &str, class: &str| r[phase][class]["p99_us"].as_f64().unwrap_or(0.0);
    let peak = r["overload"]["peak_rss_bytes"].as_u64().unwrap_or(0);
    let overall_peak = ["unloaded", "capacity", "overload", "after"]
        .iter()
        .filter_map(|p| r[p]["peak_rss_bytes"].as_u64())
        .max()
        .unwrap_or(peak);
    let ratio = |class: &str| p99("overload", class) / p99("unloaded", class).max(1.0);
    let o = &r["overload"];
    let count = |k: &str| o[k].as_u64().unwrap_or(0);
    let answered = count("ok") + count("shed") + count("other") + count("errors");
    let shed_share = count("shed") as f64 / answered.max(1) as f64;
    let met = |ok: bool| if ok { "met" } else { "missed" };
    let alive = r["alive"].as_bool().unwrap_or(false) && alive_after;
    report.push_str(&format!(
        "\n- Peak RSS {:.1} MiB over the whole run (idle {:.1} MiB); stated bound {:.1} MiB = idle + \
         (in-flight + queue = {held}) × 8 × the large body + 64 MiB → {}\n\
         - Accepted requests' p99 under overload vs unloaded: all {:.2}× ({} → {}), tiny {:.2}×, large {:.2}× \
         (target ≤ {P99_TARGET_RATIO}×) → {}\n\
         - Offered {:.0} req/s ({factor}× the measured {:.0} req/s); {:.1} % of the answered requests shed with 503/429, \
         {} other statuses, {} connection errors, {} not sent (generator's outstanding cap)\n\
         - Server alive at the end: {} ({} requests served after the overload)\n",
        overall_peak as f64 / 1048576.0,
        idle as f64 / 1048576.0,
        bound as f64 / 1048576.0,
        met(overall_peak <= bound),
        ratio("all"),
        super::server::ms(p99("unloaded", "all") as u64),
        super::server::ms(p99("overload", "all") as u64),
        ratio("tiny"),
        ratio("large"),
        met(ratio("all") <= P99_TARGET_RATIO),
        r["offered_rps"].as_f64().unwrap_or(0.0),
        r["capacity_rps"].as_f64().unwrap_or(0.0),
        shed_share * 100.0,
        count("other"),
        count("errors"),
        count("not_sent"),
        if alive { "yes" } else { "NO" },
        r["after"]["ok"].as_u64().unwrap_or(0),
    ));
    println!("\n{report}");
    let out_file = dir.join("overload.md");
    std::fs::write(&out_file, &report)
        .with_context(|| format!("writing {}", out_file.display()))?;
    std::fs::write(dir.join("overload.json"), out.trim())?;
    println!("written to {}", out_file.display());
    if publish {
        let doc = crate::project_root().join("docs/benchmarks.md");
        let text = std::fs::read_to_string(&doc)?;
        std::fs::write(&doc, super::splice(&text, "overload", &report)?)?;
        println!("updated {}", doc.display());
    }
    Ok(())
}

/// The phases side by side.
fn table(r: &Value) -> String {
    let mut out = String::from(
        "| phase | answered 200 | shed 503/429 | other | errors | 200/s | p50 all | p99 all | p99 tiny | p99 large | peak RSS |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (phase, label) in [
        ("unloaded", "unloaded (1 in flight)"),
        ("capacity", "capacity (closed loop)"),
        ("overload", "overload (open loop)"),
        ("after", "after (1 in flight, 1 s)"),
    ] {
        let p = &r[phase];
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        let us = |class: &str, q: &str| super::server::ms(p[class][q].as_u64().unwrap_or(0));
        out.push_str(&format!(
            "| {label} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} MiB |\n",
            n("ok"),
            n("shed"),
            n("other"),
            n("errors"),
            p["ok_rps"].as_f64().unwrap_or(0.0),
            us("all", "p50_us"),
            us("all", "p99_us"),
            us("tiny", "p99_us"),
            us("large", "p99_us"),
            n("peak_rss_bytes") as f64 / 1048576.0,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_requests_of_the_asked_size() {
        let large = body((1 << 20) / (ROW.len() + 1));
        let v: Value = serde_json::from_str(&large).unwrap();
        let rows = v["inputs"][0]["shape"][0].as_u64().unwrap() as usize;
        assert_eq!(v["inputs"][0]["data"].as_array().unwrap().len(), rows);
        assert!((900_000..1_200_000).contains(&large.len()), "{}", large.len());
        assert_eq!(rss_bound(100, 4, 10), 100 + 320 + (64 << 20));
    }
}
