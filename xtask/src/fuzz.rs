//! `cargo xtask fuzz [--target T] [--time S] [--runs N]`: runs the cargo-fuzz targets under
//! `fuzz/` (installing cargo-fuzz when it is missing), each for S seconds (or until N
//! executions, whichever comes first) from its working corpus
//! `fuzz/corpus/T` topped up with the committed seeds `fuzz/seeds/T`, and prints per target
//! the executions, coverage and speed of libFuzzer's final `#N DONE cov: …` line. A crash
//! fails the command and names the input libFuzzer saved under `fuzz/artifacts/T/`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub struct Args {
    /// Run only this target (default: every target in fuzz/Cargo.toml).
    #[arg(long)]
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Stop a target after this many executions even when its time is not up.
    #[arg(long)]
    runs: Option<u64>,
}

/// What one target's run gave.
struct Outcome {
    target: String,
    /// libFuzzer's final `#N DONE cov: …` line, when it got that far.
    done: Option<String>,
    crashed: bool,
    log: String,
}

pub fn run(sh: &Shell, args: Args) -> Result<()> {
    ensure_cargo_fuzz(sh)?;
    let all: Vec<String> = cmd!(sh, "cargo +nightly fuzz list")
        .read()
        .context("listing the fuzz targets")?
        .lines()
        .map(str::to_owned)
        .collect();
    let targets = match args.target {
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target {t:?}; the targets are: {}", all.join(", ")),
        None => all,
    };
    let one = targets.first().filter(|_| targets.len() == 1).cloned();
    let build = one.iter().collect::<Vec<_>>();
    cmd!(sh, "cargo +nightly fuzz build {build...}").run().context("building the fuzz targets")?;
    let logs = crate::state_dir().join("fuzz");
    std::fs::create_dir_all(&logs)?;
    let root = crate::project_root();
    let mut outcomes = Vec::new();
    for target in &targets {
        let corpus = root.join("fuzz/corpus").join(target);
        copy_seeds(&root.join("fuzz/seeds").join(target), &corpus)?;
        let log = logs.join(format!("{target}.log"));
        eprintln!("fuzzing {target} for {} s (log: {})", args.time, log.display());
        let status = Command::new("cargo")
            .current_dir(&root)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={}", args.time))
            .args(args.runs.map(|n| format!("-runs={n}")))
            .args(["-timeout=20", "-rss_limit_mb=3072", "-print_final_stats=1"])
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .status()
            .with_context(|| format!("running cargo fuzz run {target}"))?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let done = text.lines().rev().find(|l| l.split_whitespace().nth(1) == Some("DONE"));
        let done = done.map(str::to_owned);
        outcomes.push(Outcome {
            target: target.clone(),
            done,
            crashed: !status.success(),
            log: log.display().to_string(),
        });
        let last = outcomes.last().expect("just pushed");
        println!("{target}: {}", summary(last, &text));
    }
    println!("\n{:<16} result", "target");
    for o in &outcomes {
        let line = o.done.as_deref().unwrap_or("(no final line)");
        let verdict = if o.crashed { "CRASH" } else { "ok" };
        println!("{:<16} {verdict:<6} {line}", o.target);
    }
    let crashed: Vec<&str> =
        outcomes.iter().filter(|o| o.crashed).map(|o| o.target.as_str()).collect();
    if !crashed.is_empty() {
        bail!("fuzz targets failed: {} (inputs under fuzz/artifacts/)", crashed.join(", "));
    }
    Ok(())
}

/// The final line, or where the crash is.
fn summary(o: &Outcome, log: &str) -> String {
    if o.crashed {
        let artifact = log
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p.to_owned()))
            .unwrap_or_else(|| "no input saved".to_owned());
        format!("CRASH: {artifact} (log: {})", o.log)
    } else {
        o.done.clone().unwrap_or_else(|| format!("finished without a final line (log: {})", o.log))
    }
}

/// Installs cargo-fuzz from crates.io when `cargo +nightly fuzz` does not run.
fn ensure_cargo_fuzz(sh: &Shell) -> Result<()> {
    if cmd!(sh, "cargo +nightly fuzz --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_ok()
    {
        return Ok(());
    }
    eprintln!("cargo-fuzz is missing; installing it (cargo install cargo-fuzz)");
    cmd!(sh, "cargo install cargo-fuzz").run().context("installing cargo-fuzz")?;
    Ok(())
}

/// Copies the committed seeds into the working corpus, keeping what earlier runs found.
fn copy_seeds(seeds: &Path, corpus: &Path) -> Result<()> {
    std::fs::create_dir_all(corpus)?;
    let Ok(entries) = std::fs::read_dir(seeds) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        std::fs::copy(entry.path(), corpus.join(entry.file_name()))
            .with_context(|| format!("copying seed {}", entry.path().display()))?;
    }
    Ok(())
}
