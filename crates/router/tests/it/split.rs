//! The weighted split as clients see it: the realised share over 10,000 requests, and table
//! changes under load (no request fails, no request reaches a removed revision, a change
//! applies to the next request).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oxserve_router::RouterConfig;
use parking_lot::Mutex;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_ninety_over_ten_thousand_requests_is_within_half_a_percent() {
    let a = Replica::start("iris").await;
    let b = Replica::start("iris").await;
    let routes = table(vec![service(
        "iris",
        vec![
            target("iris-1", 10, vec![a.route("a", true)]),
            target("iris-2", 90, vec![b.route("b", true)]),
        ],
    )]);
    let gw = Gateway::start(RouterConfig::default(), &routes).await;
    let http = Http::default();
    let url = format!("{}/v2/models/iris/ready", gw.url());
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, counts) = (http.clone(), url.clone(), counts.clone());
            tokio::spawn(async move {
                for _ in 0..10_000 / 32 + 1 {
                    let a = http.get(&url, None).await;
                    assert_eq!(a.status, 200);
                    *counts.lock().entry(a.revision().to_owned()).or_default() += 1;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let counts = counts.lock().clone();
    let total: usize = counts.values().sum();
    assert!(total >= 10_000);
    let share = counts["iris-1"] as f64 / total as f64;
    println!(
        "split 10/90 over {total} requests: iris-1 {share:.4} (error {:.4} points)",
        (share - 0.1).abs() * 100.0
    );
    assert!((share - 0.10).abs() <= 0.005, "iris-1 got {share:.4} of {total}: {counts:?}");
    drop(gw);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_changes_under_load_fail_no_request() {
    let replicas =
        [Replica::start("iris").await, Replica::start("iris").await, Replica::start("iris").await];
    let t = |weights: &[(usize, u32)]| {
        table(vec![service(
            "iris",
            weights
                .iter()
                .map(|&(i, w)| {
                    target(&format!("iris-{}", i + 1), w, vec![replicas[i].route("r", true)])
                })
                .collect(),
        )])
    };
    let gw = Gateway::start(RouterConfig::default(), &t(&[(0, 100), (1, 0)])).await;
    let http = Http::default();
    let url = format!("{}/v2/models/iris/infer", gw.url());
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<(String, u16)>::new()));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, stop, seen) = (http.clone(), url.clone(), stop.clone(), seen.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let a = http.post(&url, None, &infer_body()).await;
                    seen.lock().push((a.revision().to_owned(), a.status.as_u16()));
                }
            })
        })
        .collect();
    let steps: [&[(usize, u32)]; 5] =
        [&[(0, 50), (1, 50)], &[(0, 0), (1, 100)], &[(1, 10), (2, 90)], &[(2, 100)], &[(0, 100)]];
    for step in steps {
        // Let some requests run under the current table first.
        let before = seen.lock().len();
        until("requests under the current table", || seen.lock().len() > before + 200).await;
        gw.router.update(&t(step)).unwrap();
        // The change applies to the very next request.
        let only: Vec<_> = step.iter().filter(|(_, w)| *w == 100).collect();
        if let [(i, _)] = only[..] {
            let a = http.get(&format!("{}/v2/models/iris/ready", gw.url()), None).await;
            assert_eq!(a.revision(), format!("iris-{}", i + 1));
        }
    }
    let before = seen.lock().len();
    until("requests under the last table", || seen.lock().len() > before + 200).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let seen = seen.lock().clone();
    let failed: Vec<_> = seen.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    for rev in ["iris-1", "iris-2", "iris-3"] {
        assert!(seen.iter().any(|(r, _)| r == rev), "{rev} served some requests");
    }
    drop(gw);
    for r in replicas {
        r.stop().await;
    }
}
