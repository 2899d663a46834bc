//! `oxserve infer`: sends one V2 inference request (JSON) and prints the response.

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Model name.
    model: String,
    /// Request body as JSON (V2 inference request), or @FILE.
    #[arg(long)]
    data: String,
    /// Server REST base URL.
    #[arg(long, env = "OXSERVE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
}

pub fn run(args: Args) -> Result<()> {
    let Args { model, data, url } = args;
    let _ = (model, data, url);
    anyhow::bail!("not yet implemented")
}
