//! The puller against real HTTP file servers: archives, traversal, truncated downloads.

use axum::Router;
use axum::body::Body;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use oxserve_agent::progress::ProgressMode;
use oxserve_agent::puller::{Puller, PullerConfig};

use crate::support::{Dirs, serve_http, tar_gz, tree};

fn zip_bytes(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

async fn files_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let good = Bytes::from(tar_gz(&[
        ("model/1/model.onnx", b"onnx-bytes"),
        ("model/config.pbtxt", b"cfg"),
    ]));
    let evil = Bytes::from(tar_gz(&[("ok.txt", b"ok"), ("../../escaped.txt", b"gotcha")]));
    let zip_good = Bytes::from(zip_bytes(&[("model.json", b"{}"), ("sub/tree.txt", b"t")]));
    let plain = Bytes::from_static(b"just a file");
    let router = Router::new()
        .route("/files/model.tar.gz", get(move || async move { good.clone() }))
        .route("/files/evil.tar.gz", get(move || async move { evil.clone() }))
        .route("/files/model.zip", get(move || async move { zip_good.clone() }))
        .route("/files/model.bst", get(move || async move { plain.clone() }))
        // Says 1 MB, sends 10 bytes, then the connection dies.
        .route(
            "/files/truncated.bin",
            get(|| async {
                let stream = futures::stream::iter(vec![
                    Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789")),
                    Err(std::io::Error::other("server died")),
                ]);
                ([(header::CONTENT_LENGTH, "1000000")], Body::from_stream(stream)).into_response()
            }),
        );
    let (addr, stop) = serve_http(router).await;
    (format!("http://{addr}/files"), stop)
}

fn puller(dirs: &Dirs) -> Puller {
    let mut c = PullerConfig::new(dirs.cache());
    c.store.max_retries = 0;
    c.progress = ProgressMode::Off;
    Puller::new(c).unwrap()
}

#[tokio::test]
async fn http_archives_are_unpacked_and_cached() {
    let (base, _stop) = files_server().await;
    let dirs = Dirs::new();
    let p = puller(&dirs);
    let dest = dirs.models().join("t");
    let out = p.pull(&format!("{base}/model.tar.gz"), &dest).await.unwrap();
    assert!(!out.cache_hit);
    assert_eq!(tree(&dest), vec!["model/", "model/1/", "model/1/model.onnx", "model/config.pbtxt"]);
    assert_eq!(std::fs::read(dest.join("model/1/model.onnx")).unwrap(), b"onnx-bytes");
    assert!(
        p.pull(&format!("{base}/model.tar.gz"), &dirs.models().join("t2")).await.unwrap().cache_hit
    );

    let z = dirs.models().join("z");
    p.pull(&format!("{base}/model.zip"), &z).await.unwrap();
    assert_eq!(tree(&z), vec!["model.json", "sub/", "sub/tree.txt"]);

    let f = dirs.models().join("f");
    p.pull(&format!("{base}/model.bst"), &f).await.unwrap();
    assert_eq!(std::fs::read(f.join("model.bst")).unwrap(), b"just a file");
}

#[tokio::test]
async fn archive_with_traversal_is_rejected_whole() {
    let (base, _stop) = files_server().await;
    let dirs = Dirs::new();
    let dest = dirs.models().join("evil");
    let err = puller(&dirs).pull(&format!("{base}/evil.tar.gz"), &dest).await.unwrap_err();
    assert!(err.to_string().contains("escapes the destination"), "{err}");
    assert!(!dest.exists());
    assert!(!dirs.tmp.path().join("escaped.txt").exists());
    assert!(
        tree(dirs.tmp.path()).iter().all(|p| !p.contains("escaped")),
        "{:?}",
        tree(dirs.tmp.path())
    );
    assert!(dirs.entries().is_empty());
}

#[tokio::test]
async fn truncated_download_leaves_nothing_visible() {
    let (base, _stop) = files_server().await;
    let dirs = Dirs::new();
    let dest = dirs.models().join("m");
    assert!(puller(&dirs).pull(&format!("{base}/truncated.bin"), &dest).await.is_err());
    assert!(!dest.exists());
    assert_eq!(tree(&dirs.models()), Vec::<String>::new());
    assert!(dirs.entries().is_empty());
    assert_eq!(tree(&dirs.cache().join("tmp")), Vec::<String>::new());
}
