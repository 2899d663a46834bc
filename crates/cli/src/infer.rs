//! `oxserve infer`: sends one V2 inference request over REST or gRPC and prints the response
//! as V2 JSON.

use anyhow::{Context, Result, bail};
use oxserve_client::{GrpcClient, RestClient};
use oxserve_protocol::rest::{self, ResponseEncoding};

#[derive(clap::Args)]
pub struct Args {
    /// Model name.
    model: String,
    /// The V2 inference request as JSON, or @FILE to read it from a file.
    #[arg(long)]
    data: String,
    /// Model version (default: the server's default version).
    #[arg(long)]
    model_version: Option<String>,
    /// Server REST base URL.
    #[arg(
        long,
        env = "OXSERVE_URL",
        default_value = "http://127.0.0.1:8080",
        conflicts_with = "grpc"
    )]
    url: String,
    /// Send over gRPC to this address (host:port) instead of REST.
    #[arg(long, env = "OXSERVE_GRPC_URL")]
    grpc: Option<String>,
    /// Send tensors as binary data (REST binary tensor extension / gRPC raw contents).
    #[arg(long)]
    binary: bool,
}

pub fn run(args: Args) -> Result<()> {
    let Args { model, data, model_version, url, grpc, binary } = args;
    let body = match data.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {path}"))?,
        None => data.into_bytes(),
    };
    let request = rest::decode_request(&body, None)
        .map_err(|e| anyhow::anyhow!("--data is not a valid V2 inference request: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let response = runtime.block_on(async {
        let version = model_version.as_deref();
        match grpc {
            Some(addr) => {
                let client = GrpcClient::connect(&addr).await?;
                client.infer(&model, version, &request, binary).await
            }
            None => RestClient::new(&url)?.infer(&model, version, &request, binary).await,
        }
    });
    let response = match response {
        Ok(r) => r,
        Err(e) => bail!("{e}"),
    };
    let encoded = rest::encode_response(&response, &ResponseEncoding::default());
    if encoded.header_length.is_some() {
        bail!("the response holds tensors JSON cannot carry (FP16, BF16 or non-UTF-8 BYTES)");
    }
    println!("{}", String::from_utf8_lossy(&encoded.body));
    Ok(())
}
