//! The prediction log's group commit on the callers' own threads: every
//! acknowledged row is committed, under contention, with fire-and-forget
//! shadow rows and actions interleaved, and the WAL is checkpointed into the
//! database file at shutdown. Real SQLite files, real threads.

mod common;

use std::sync::Arc;

use bridgeml_serve::log::{
    read_actions, read_pairs, ActionRow, LogWriter, PredictionRow, ShadowRow,
};

fn row(request_id: &str, instance: i64) -> PredictionRow {
    PredictionRow {
        ts_ms: 1_800_000_000_000 + instance,
        request_id: request_id.into(),
        instance,
        segment: "default".into(),
        input_hash: format!("sha256:{:064x}", instance),
        spec_fingerprint: "sha256:spec".into(),
        model_sha256: "sha256:live".into(),
        class: instance % 3,
        label_name: None,
        confidence: 0.5,
        ood_score: None,
        is_ood: None,
        latency_ms: 1.0,
    }
}

#[test]
fn concurrent_writers_all_commit_and_shadow_rows_follow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let log = Arc::new(LogWriter::start(&path).unwrap());
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let log = Arc::clone(&log);
            let path = &path;
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    let id = format!("t{t}-r{i}");
                    // Acknowledged means committed: a fresh connection sees it.
                    log.log_predictions_blocking(vec![row(&id, 0), row(&id, 1)])
                        .unwrap();
                    if i % 10 == 0 {
                        let seen: i64 = rusqlite::Connection::open(path)
                            .unwrap()
                            .query_row(
                                "SELECT COUNT(*) FROM predictions WHERE request_id = ?1",
                                [&id],
                                |r| r.get(0),
                            )
                            .unwrap();
                        assert_eq!(seen, 2, "{id} acknowledged but not visible");
                    }
                    log.log_shadow(vec![ShadowRow {
                        request_id: id.clone(),
                        instance: 0,
                        model_sha256: "sha256:cand".into(),
                        class: Some(7),
                        confidence: Some(0.4),
                        ood_score: None,
                        latency_ms: 2.0,
                        error: None,
                    }]);
                    if i == 0 {
                        log.log_action(ActionRow {
                            ts_ms: 1_800_000_000_000,
                            window: t as i64,
                            action: "shadow_eval".into(),
                            rule: "r".into(),
                            detail: "[]".into(),
                        });
                    }
                }
            });
        }
    });
    log.shutdown();
    // After shutdown the log refuses rows instead of losing them silently.
    assert!(log.log_predictions_blocking(vec![row("late", 0)]).is_err());
    // Checkpointed into the database file: the WAL is gone or empty.
    let wal = dir.path().join("log.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "WAL left behind"
    );
    let pairs = read_pairs(&path, None, None).unwrap();
    assert_eq!(pairs.len(), THREADS * PER_THREAD * 2);
    let shadowed = pairs.iter().filter(|p| p.shadow_class == Some(7)).count();
    assert_eq!(shadowed, THREADS * PER_THREAD);
    assert_eq!(read_actions(&path, None, None).unwrap().len(), THREADS);
}

fn count(path: &std::path::Path, request_id: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM predictions WHERE request_id = ?1",
            [request_id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_commit_window_commits_deferred_rows_without_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    for bad in [0, 10_001] {
        assert!(
            LogWriter::with_commit_window(&path, std::time::Duration::from_millis(bad)).is_err()
        );
    }
    let window = std::time::Duration::from_millis(50);
    let log = LogWriter::with_commit_window(&path, window).unwrap();
    assert_eq!(log.commit_window(), Some(window));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    // Feedback right behind a deferred row joins it: every transaction
    // takes the deferred rows first.
    log.log_predictions_deferred(vec![row("fb", 0), row("fb", 1)])
        .unwrap();
    let joined = rt
        .block_on(log.feedback("fb".into(), Some(1), 2, 1_800_000_000_500))
        .unwrap();
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].class, 1);
    // A shadow answer queued behind its deferred row lands on it.
    log.log_predictions_deferred(vec![row("sh", 0)]).unwrap();
    log.log_shadow(vec![ShadowRow {
        request_id: "sh".into(),
        instance: 0,
        model_sha256: "sha256:cand".into(),
        class: Some(4),
        confidence: Some(0.9),
        ood_score: None,
        latency_ms: 2.0,
        error: None,
    }]);

    // Nobody waits for these: the flusher commits them within the window
    // (polled with a generous bound, for a loaded machine).
    for i in 0..20 {
        log.log_predictions_deferred(vec![row(&format!("w{i}"), 0)])
            .unwrap();
    }
    let t0 = std::time::Instant::now();
    while (0..20).any(|i| count(&path, &format!("w{i}")) == 0) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "deferred rows not committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    // The flusher does background work at idle CPU priority (it is back
    // there once nothing waits on it).
    #[cfg(target_os = "linux")]
    {
        let deadline = t0 + std::time::Duration::from_secs(20);
        while !common::thread_policies("bridgeml-log").contains(&common::SCHED_IDLE) {
            assert!(
                std::time::Instant::now() < deadline,
                "no flusher at SCHED_IDLE"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    // Shutdown commits what is still queued, then refuses more.
    log.log_predictions_deferred(vec![row("last", 0)]).unwrap();
    log.shutdown();
    assert!(log.log_predictions_deferred(vec![row("late", 0)]).is_err());
    assert_eq!(count(&path, "last"), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let integer = |sql: &str| -> Option<i64> { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        integer("SELECT shadow_class FROM predictions WHERE request_id = 'sh'"),
        Some(4)
    );
    assert_eq!(
        integer("SELECT label FROM predictions WHERE request_id = 'fb' AND instance = 1"),
        Some(2)
    );
    assert_eq!(
        integer("SELECT COUNT(*) FROM predictions"),
        Some(2 + 1 + 20 + 1)
    );
}
