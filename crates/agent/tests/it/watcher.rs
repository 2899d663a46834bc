//! The multi-model watcher reconciling a real oxserve server.

use std::time::Duration;

use oxserve_agent::progress::ProgressMode;
use oxserve_agent::puller::{Puller, PullerConfig};
use oxserve_agent::watcher::{Phase, Watcher, WatcherConfig};

use crate::support::{fixture, start_server};

async fn ready(server: &str, model: &str) -> u16 {
    reqwest::get(format!("{server}/v2/models/{model}/ready")).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn pulls_loads_reloads_and_unloads_models() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("models");
    std::fs::create_dir_all(&model_dir).unwrap();
    let (server, _stop) = start_server(&model_dir).await;
    let config_file = dir.path().join("models.json");
    let mut pc = PullerConfig::new(dir.path().join("cache"));
    pc.progress = ProgressMode::Off;
    let mut watcher = Watcher::new(
        WatcherConfig {
            config_file: config_file.clone(),
            model_dir: model_dir.clone(),
            server: server.clone(),
            interval: Duration::from_millis(10),
        },
        Puller::new(pc).unwrap(),
    )
    .unwrap();
    let states = watcher.states();

    // No config file yet: nothing to do.
    watcher.reconcile_once().await.unwrap();
    assert_eq!(states.snapshot(), serde_json::json!({}));

    let write = |json: String| std::fs::write(&config_file, json).unwrap();
    let uri = |m: &str| format!("file://{}", fixture(m).display());
    write(format!(
        r#"[{{"modelName":"a","modelSpec":{{"storageUri":"{}","framework":"xgboost","memory":"1Mi"}}}},
            {{"name":"b","storageUri":"{}"}},
            {{"name":"broken","storageUri":"file:///nonexistent/model"}}]"#,
        uri("xgb-binary"),
        uri("lgbm-regression")
    ));
    watcher.reconcile_once().await.unwrap();
    assert_eq!(states.get("a").unwrap().phase, Phase::Loaded);
    assert_eq!(states.get("b").unwrap().phase, Phase::Loaded);
    let broken = states.get("broken").unwrap();
    assert_eq!(broken.phase, Phase::Failed);
    assert_eq!(broken.failures, 1);
    assert!(broken.error.as_deref().unwrap().contains("nonexistent"), "{broken:?}");
    assert_eq!(ready(&server, "a").await, 200);
    assert_eq!(ready(&server, "b").await, 200);

    // `a` changes source (reload from another model), `b` is removed.
    write(format!(r#"[{{"name":"a","storageUri":"{}"}}]"#, uri("xgb-regression")));
    watcher.reconcile_once().await.unwrap();
    assert_eq!(states.get("a").unwrap().storage_uri, uri("xgb-regression"));
    assert_eq!(states.get("a").unwrap().phase, Phase::Loaded);
    assert!(
        std::fs::read_dir(model_dir.join("a"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name() == "model.json")
    );
    let meta: serde_json::Value =
        reqwest::get(format!("{server}/v2/models/a")).await.unwrap().json().await.unwrap();
    assert_eq!(
        meta["outputs"].as_array().unwrap().len(),
        1,
        "xgb-regression has one output: {meta}"
    );
    assert!(states.get("b").is_none() && states.get("broken").is_none());
    assert_ne!(ready(&server, "b").await, 200);
    assert!(!model_dir.join("b").exists());

    // A broken config is an error and changes nothing.
    write("[{\"name\": 1}]".into());
    assert!(watcher.reconcile_once().await.is_err());
    assert_eq!(states.get("a").unwrap().phase, Phase::Loaded);
}
