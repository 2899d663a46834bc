//! `oxserve apply --wait`: follows applied InferenceServices until the newest revision of
//! every component is Ready, printing one progress line per change (`iris: pulling 42 %`,
//! `iris: loading`, `iris: ready in 3.2s`). A revision that fails ends the wait with its
//! reason; so does the timeout, with the last progress seen. Ready means the newest
//! revisions are Ready and the service's `Ready` condition is `True` (its routes serve them).

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::resources::Api;

/// How often the revisions are read.
const POLL: Duration = Duration::from_millis(200);

/// How a wait ended.
pub enum Outcome {
    /// Every service is Ready.
    Ready,
    /// A revision failed, the api refused, or the timeout passed (already reported).
    Failed,
    /// The platform stopped answering.
    Unreachable(String),
}

/// Where one service stands, from its revisions.
#[derive(Debug, PartialEq)]
enum Progress {
    /// Not ready yet: what it is doing.
    Waiting(String),
    Ready,
    /// The newest revision of a component failed.
    Failed {
        revision: String,
        reason: String,
    },
}

/// The newest revision of each component decides (the api lists them newest last per
/// component).
fn progress(revisions: &[Value]) -> Progress {
    let mut newest: Vec<(&str, &Value)> = Vec::new();
    for r in revisions {
        let component = r.get("component").and_then(Value::as_str).unwrap_or("predictor");
        match newest.iter_mut().find(|(c, _)| *c == component) {
            Some(slot) => slot.1 = r,
            None => newest.push((component, r)),
        }
    }
    if newest.is_empty() {
        return Progress::Waiting("waiting for a revision".into());
    }
    let several = newest.len() > 1;
    for (_, r) in &newest {
        let state = r.get("state").and_then(Value::as_str).unwrap_or("");
        if state == "Failed" {
            return Progress::Failed {
                revision: r.get("name").and_then(Value::as_str).unwrap_or("").to_owned(),
                reason: r.get("reason").and_then(Value::as_str).unwrap_or("failed").to_owned(),
            };
        }
    }
    for (component, r) in &newest {
        let state = r.get("state").and_then(Value::as_str).unwrap_or("");
        if state != "Ready" {
            let what =
                r.get("progress").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| {
                    match state {
                        "Pulling" => "pulling".to_owned(),
                        "Loading" => "loading".to_owned(),
                        _ => "waiting for a replica".to_owned(),
                    }
                });
            return Progress::Waiting(if several { format!("{component} {what}") } else { what });
        }
    }
    Progress::Ready
}

/// Whether the service's `Ready` condition is `True` (its routes serve the new revisions).
async fn routed(api: &Api, url: &str) -> bool {
    let Ok(r) = api.client.get(url).send().await else { return false };
    let Ok(v) = r.json::<Value>().await else { return false };
    v.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| {
        cs.iter().any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

/// Waits for every `(namespace, name)` to be Ready within `timeout`.
pub async fn ready(api: &Api, services: &[(String, String)], timeout: Duration) -> Outcome {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut last: Vec<Option<String>> = vec![None; services.len()];
    let mut done = vec![false; services.len()];
    let mut failed = false;
    loop {
        for (i, (ns, name)) in services.iter().enumerate() {
            if done[i] {
                continue;
            }
            let base = format!(
                "{}/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}",
                api.base
            );
            let url = format!("{base}/revisions");
            let revisions = match api.client.get(&url).send().await {
                Err(e) => {
                    return Outcome::Unreachable(format!(
                        "lost the platform at {} while waiting for {name}: {e}",
                        api.base
                    ));
                }
                Ok(r) if !r.status().is_success() => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    eprintln!("error: {name}: the api answered {status}: {}", text.trim());
                    done[i] = true;
                    failed = true;
                    continue;
                }
                Ok(r) => match r.json::<Vec<Value>>().await {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("error: {name}: unreadable revisions: {e}");
                        done[i] = true;
                        failed = true;
                        continue;
                    }
                },
            };
            let mut now = progress(&revisions);
            if now == Progress::Ready && !routed(api, &base).await {
                now = Progress::Waiting("routing".into());
            }
            match now {
                Progress::Ready => {
                    println!("{name}: ready in {:.1}s", start.elapsed().as_secs_f64());
                    done[i] = true;
                }
                Progress::Failed { revision, reason } => {
                    eprintln!("error: {name}: revision {revision} failed: {reason}");
                    done[i] = true;
                    failed = true;
                }
                Progress::Waiting(what) => {
                    if last[i].as_deref() != Some(what.as_str()) {
                        println!("{name}: {what}");
                        last[i] = Some(what);
                    }
                }
            }
        }
        if done.iter().all(|d| *d) {
            return if failed { Outcome::Failed } else { Outcome::Ready };
        }
        if Instant::now() >= deadline {
            for (i, (_, name)) in services.iter().enumerate() {
                if !done[i] {
                    let what = last[i].as_deref().unwrap_or("no revision");
                    eprintln!("error: {name}: not ready after {:.0?} (last: {what})", timeout);
                }
            }
            return Outcome::Failed;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_newest_revision_of_each_component_decides() {
        let old_failed = json!({"name": "a-predictor-00001", "component": "predictor", "state": "Failed", "reason": "x"});
        let pulling = json!({"name": "a-predictor-00002", "component": "predictor", "state": "Pulling", "progress": "pulling 42 %"});
        assert_eq!(
            progress(&[old_failed.clone(), pulling]),
            Progress::Waiting("pulling 42 %".into())
        );
        let ready =
            json!({"name": "a-predictor-00002", "component": "predictor", "state": "Ready"});
        assert_eq!(progress(&[old_failed, ready.clone()]), Progress::Ready);
        let loading =
            json!({"name": "a-transformer-00001", "component": "transformer", "state": "Loading"});
        assert_eq!(
            progress(&[ready.clone(), loading]),
            Progress::Waiting("transformer loading".into())
        );
        let bad = json!({"name": "a-predictor-00003", "component": "predictor", "state": "Failed", "reason": "no such bucket"});
        assert_eq!(
            progress(&[ready, bad]),
            Progress::Failed {
                revision: "a-predictor-00003".into(),
                reason: "no such bucket".into()
            }
        );
        assert_eq!(progress(&[]), Progress::Waiting("waiting for a revision".into()));
    }
}
