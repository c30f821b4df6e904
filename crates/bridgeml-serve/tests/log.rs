//! The prediction log's group commit on the callers' own threads: every
//! acknowledged row is committed, under contention, with fire-and-forget
//! shadow rows and actions interleaved, and the WAL is checkpointed into the
//! database file at shutdown. Real SQLite files, real threads.

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
