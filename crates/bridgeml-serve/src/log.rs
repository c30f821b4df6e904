//! The prediction log: SQLite in WAL mode, one row per instance.
//!
//! By default requests commit their rows before answering, on their own
//! thread, with group commit (every row queued while a transaction runs goes
//! into the next one; no timer, and no acknowledged row is ever
//! uncommitted): see [`LogWriter`]. With a commit window
//! ([`LogWriter::with_commit_window`]) they queue their rows instead and
//! the flusher thread commits them within the window: the commit leaves the
//! response path, and a crash loses at most the window's rows.
//! `synchronous = NORMAL` in WAL
//! mode: a committed transaction survives the death of the process
//! (`kill -9`); on power loss the last transactions may be lost.
//!
//! The schema is versioned (`meta.schema_version`); see `docs/SERVING.md`.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::priority::ThreadPriority;
use crate::{Result, ServeError};

/// Version of the schema below.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
  id INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  instance INTEGER NOT NULL,
  segment TEXT NOT NULL,
  input_hash TEXT NOT NULL,
  spec_fingerprint TEXT NOT NULL,
  model_sha256 TEXT NOT NULL,
  class INTEGER NOT NULL,
  label_name TEXT,
  confidence REAL NOT NULL,
  ood_score REAL,
  is_ood INTEGER,
  latency_ms REAL NOT NULL,
  shadow_model_sha256 TEXT,
  shadow_class INTEGER,
  shadow_confidence REAL,
  shadow_ood_score REAL,
  shadow_latency_ms REAL,
  shadow_error TEXT,
  label INTEGER,
  label_ts_ms INTEGER,
  UNIQUE (request_id, instance)
);
CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts_ms);
CREATE TABLE IF NOT EXISTS actions (
  id INTEGER PRIMARY KEY,
  ts_ms INTEGER NOT NULL,
  window INTEGER NOT NULL,
  action TEXT NOT NULL,
  rule TEXT NOT NULL,
  detail TEXT NOT NULL
);
"#;

/// One logged instance (the primary model's answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredictionRow {
    pub ts_ms: i64,
    pub request_id: String,
    pub instance: i64,
    pub segment: String,
    pub input_hash: String,
    pub spec_fingerprint: String,
    pub model_sha256: String,
    pub class: i64,
    pub label_name: Option<String>,
    pub confidence: f64,
    pub ood_score: Option<f64>,
    pub is_ood: Option<bool>,
    pub latency_ms: f64,
}

/// The candidate's answer for one logged instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowRow {
    pub request_id: String,
    pub instance: i64,
    pub model_sha256: String,
    pub class: Option<i64>,
    pub confidence: Option<f64>,
    pub ood_score: Option<f64>,
    pub latency_ms: f64,
    pub error: Option<String>,
}

/// A policy action triggered at a window close.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRow {
    pub ts_ms: i64,
    pub window: i64,
    pub action: String,
    pub rule: String,
    pub detail: String,
}

/// What feedback joined: the predicted class of each labelled instance.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackJoin {
    pub instance: i64,
    pub class: i64,
}

/// Where a committed message's outcome goes.
enum Reply<T> {
    /// A thread waiting in [`LogWriter::log_predictions_blocking`].
    Blocking(mpsc::SyncSender<Result<T>>),
    /// An async caller.
    Async(tokio::sync::oneshot::Sender<Result<T>>),
    /// Nobody waits (rows inside a commit window): a failure is only logged
    /// by `tracing`, like any failed transaction.
    Detached,
}

impl<T> Reply<T> {
    fn send(self, r: Result<T>) {
        match self {
            Reply::Blocking(s) => {
                let _ = s.send(r);
            }
            Reply::Async(s) => {
                let _ = s.send(r);
            }
            Reply::Detached => {}
        }
    }
}

enum Msg {
    Predictions(Vec<PredictionRow>, Reply<()>),
    Shadow(Vec<ShadowRow>),
    Action(ActionRow),
    Feedback {
        request_id: String,
        instance: Option<i64>,
        label: i64,
        ts_ms: i64,
        reply: Reply<Vec<FeedbackJoin>>,
    },
}

/// Messages waiting for a transaction.
#[derive(Default)]
struct Queue {
    /// Set (under this lock) before the last transaction takes the queue:
    /// a deferred row queued after it would never be committed.
    closed: bool,
    /// Acknowledged rows inside the commit window: every transaction takes
    /// them first, so that feedback and shadow answers find their rows.
    deferred: Vec<Msg>,
    /// Someone waits for these (predictions, feedback).
    urgent: Vec<Msg>,
    /// Fire and forget (shadow answers, actions): only the flusher thread
    /// commits them, so that they never lengthen a request's commit.
    background: Vec<Msg>,
}

struct Shared {
    path: PathBuf,
    queue: Mutex<Queue>,
    /// The one connection; `None` once the log is shut down.
    conn: Mutex<Option<Connection>>,
}

enum Nudge {
    Flush,
    Shutdown,
}

/// How long fire-and-forget rows may wait for the flusher (at most; a
/// shorter commit window shortens it).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// The longest commit window accepted: beyond it a crash would lose more
/// than a log should.
pub const MAX_COMMIT_WINDOW: Duration = Duration::from_secs(10);

/// Opens (creating or migrating) a log database.
pub fn open(path: &Path) -> Result<Connection> {
    let db = |e: rusqlite::Error| ServeError::Log {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let conn = Connection::open(path).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(db)?;
    conn.execute_batch(SCHEMA).map_err(db)?;
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    match v {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION.to_string()],
            )
            .map_err(db)?;
        }
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        Some(v) => {
            return Err(ServeError::Log {
                path: path.to_path_buf(),
                reason: format!(
                    "schema version {v}, this bridgeml writes version {SCHEMA_VERSION}: use another log file"
                ),
            })
        }
    }
    Ok(conn)
}

/// Handle to the prediction log.
///
/// Group commit without a writer thread on the request path: a request
/// queues its rows, takes the connection and commits everything queued
/// (the rows of requests that queued meanwhile included), or finds that
/// the previous holder already committed its rows. Either way its rows are
/// committed before it returns, in one hand-off fewer than a writer thread
/// would need. A flusher thread commits the fire-and-forget rows (shadow
/// answers, actions) every [`FLUSH_INTERVAL`] and async callers' messages
/// when nudged.
pub struct LogWriter {
    shared: Arc<Shared>,
    commit_window: Option<Duration>,
    nudge: mpsc::Sender<Nudge>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("path", &self.shared.path)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogWriter {
    /// Opens the database and starts the flusher thread; rows are
    /// committed before [`Self::log_predictions_blocking`] returns.
    pub fn start(path: &Path) -> Result<LogWriter> {
        Self::open_with(path, None)
    }

    /// Like [`Self::start`], with [`Self::log_predictions_deferred`]
    /// committing its rows within `window` (at most [`MAX_COMMIT_WINDOW`],
    /// at least 1 ms) instead of the caller waiting for the commit.
    pub fn with_commit_window(path: &Path, window: Duration) -> Result<LogWriter> {
        if window < Duration::from_millis(1) || window > MAX_COMMIT_WINDOW {
            return Err(ServeError::Log {
                path: path.to_path_buf(),
                reason: format!(
                    "commit window of {} ms: must be 1..={} ms",
                    window.as_millis(),
                    MAX_COMMIT_WINDOW.as_millis()
                ),
            });
        }
        Self::open_with(path, Some(window))
    }

    fn open_with(path: &Path, commit_window: Option<Duration>) -> Result<LogWriter> {
        let conn = open(path)?;
        // No automatic checkpoints in a request's commit: the flusher
        // checkpoints on a connection of its own.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| ServeError::Log {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let checkpointer = open(path)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            queue: Mutex::new(Queue::default()),
            conn: Mutex::new(Some(conn)),
        });
        let (nudge, rx) = mpsc::channel::<Nudge>();
        let sh = Arc::clone(&shared);
        let interval = commit_window.map_or(FLUSH_INTERVAL, |w| w.min(FLUSH_INTERVAL));
        let handle = std::thread::Builder::new()
            .name("bridgeml-log".into())
            .spawn(move || flusher_loop(&sh, rx, checkpointer, interval))
            .map_err(|e| ServeError::Log {
                path: path.to_path_buf(),
                reason: format!("cannot start the log flusher: {e}"),
            })?;
        Ok(LogWriter {
            shared,
            commit_window,
            nudge,
            handle: Mutex::new(Some(handle)),
        })
    }

    fn closed(&self) -> ServeError {
        self.shared.closed()
    }

    /// Logs rows and returns once they are committed, on the calling
    /// thread (a blocking call: from async code use [`Self::log_predictions`]).
    pub fn log_predictions_blocking(&self, rows: Vec<PredictionRow>) -> Result<()> {
        let (reply, rx) = mpsc::sync_channel(1);
        lock(&self.shared.queue)
            .urgent
            .push(Msg::Predictions(rows, Reply::Blocking(reply)));
        {
            let mut conn = lock(&self.shared.conn);
            // Committed (or failed) by the previous holder of the connection?
            if let Ok(r) = rx.try_recv() {
                return r;
            }
            match conn.as_mut() {
                Some(c) => self.shared.commit(c, false),
                None => return Err(self.closed()),
            }
        }
        rx.recv().map_err(|_| self.closed())?
    }

    /// The commit window, when rows may be acknowledged before their commit.
    pub fn commit_window(&self) -> Option<Duration> {
        self.commit_window
    }

    /// Queues rows for the flusher, which commits them within the commit
    /// window, and returns at once. Without a window it is
    /// [`Self::log_predictions_blocking`].
    pub fn log_predictions_deferred(&self, rows: Vec<PredictionRow>) -> Result<()> {
        if self.commit_window.is_none() {
            return self.log_predictions_blocking(rows);
        }
        let mut q = lock(&self.shared.queue);
        if q.closed {
            return Err(self.closed());
        }
        q.deferred.push(Msg::Predictions(rows, Reply::Detached));
        Ok(())
    }

    /// Logs rows and waits for their commit (by the flusher thread).
    pub async fn log_predictions(&self, rows: Vec<PredictionRow>) -> Result<()> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit_urgent(Msg::Predictions(rows, Reply::Async(reply)))?;
        rx.await.map_err(|_| self.closed())?
    }

    fn submit_urgent(&self, m: Msg) -> Result<()> {
        lock(&self.shared.queue).urgent.push(m);
        self.nudge.send(Nudge::Flush).map_err(|_| self.closed())
    }

    /// Records candidate answers (fire and forget: committed within
    /// [`FLUSH_INTERVAL`], or at shutdown).
    pub fn log_shadow(&self, rows: Vec<ShadowRow>) {
        lock(&self.shared.queue).background.push(Msg::Shadow(rows));
    }

    /// Records a triggered policy action (fire and forget, like shadow rows).
    pub fn log_action(&self, row: ActionRow) {
        lock(&self.shared.queue).background.push(Msg::Action(row));
    }

    /// Joins a label to the logged prediction; `Ok(empty)` when the request id is unknown.
    pub async fn feedback(
        &self,
        request_id: String,
        instance: Option<i64>,
        label: i64,
        ts_ms: i64,
    ) -> Result<Vec<FeedbackJoin>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit_urgent(Msg::Feedback {
            request_id,
            instance,
            label,
            ts_ms,
            reply: Reply::Async(reply),
        })?;
        rx.await.map_err(|_| self.closed())?
    }

    /// Commits everything queued, checkpoints and closes the log; later
    /// calls fail with "stopped".
    pub fn shutdown(&self) {
        let _ = self.nudge.send(Nudge::Shutdown);
        if let Some(h) = lock(&self.handle).take() {
            let _ = h.join();
        }
    }
}

/// How often the flusher checkpoints the WAL into the database file.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

fn flusher_loop(
    sh: &Shared,
    rx: mpsc::Receiver<Nudge>,
    checkpointer: Connection,
    interval: Duration,
) {
    let mut last_checkpoint = std::time::Instant::now();
    // Shadow answers, actions, windowed rows and checkpoints are background
    // work: at `SCHED_IDLE` a request thread that wakes preempts it at once
    // (at normal priority it could wait out this thread's time slice, ~0.75
    // ms under EEVDF). Someone waiting (feedback, a request's commit
    // handed over) or a late flush raises it to nice 10 until caught up.
    let mut priority = ThreadPriority::idle();
    let mut last_flush = std::time::Instant::now();
    loop {
        let stop = match rx.recv_timeout(interval) {
            Ok(Nudge::Flush) | Err(mpsc::RecvTimeoutError::Timeout) => false,
            Ok(Nudge::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        let waited_on = !lock(&sh.queue).urgent.is_empty();
        let late = last_flush.elapsed() > 2 * interval;
        priority.raise_while(waited_on || late || stop);
        last_flush = std::time::Instant::now();
        if stop {
            lock(&sh.queue).closed = true;
        }
        {
            let mut conn = lock(&sh.conn);
            if let Some(c) = conn.as_mut() {
                sh.commit(c, true);
            }
            if stop {
                *conn = None;
            }
        }
        // Outside the connection's lock: a PASSIVE checkpoint runs beside
        // the requests' commits, and its fsyncs (the only ones with
        // synchronous = NORMAL) never stall a request.
        if stop || last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            if let Err(e) = checkpointer.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            last_checkpoint = std::time::Instant::now();
        }
        if stop {
            return;
        }
    }
}

impl Shared {
    fn closed(&self) -> ServeError {
        ServeError::Log {
            path: self.path.clone(),
            reason: "the log writer has stopped".into(),
        }
    }

    /// Commits the queued messages (with `background`, the fire-and-forget
    /// ones too) in one transaction and answers their senders. The caller
    /// holds the connection's lock, which is what orders the transactions.
    fn commit(&self, conn: &mut Connection, background: bool) {
        let batch: Vec<Msg> = {
            let mut q = lock(&self.queue);
            let mut b = std::mem::take(&mut q.deferred);
            b.append(&mut q.urgent);
            if background {
                b.append(&mut q.background);
            }
            b
        };
        if batch.is_empty() {
            return;
        }
        let err = |e: &rusqlite::Error| ServeError::Log {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let mut acks: Vec<Reply<()>> = Vec::new();
        let mut fb_replies = Vec::new();
        let result = (|| -> std::result::Result<(), rusqlite::Error> {
            let tx = conn.transaction()?;
            for m in batch {
                match m {
                    Msg::Predictions(rows, ack) => {
                        insert_predictions(&tx, &rows)?;
                        acks.push(ack);
                    }
                    Msg::Shadow(rows) => {
                        for r in &rows {
                            update_shadow(&tx, r)?;
                        }
                    }
                    Msg::Action(a) => insert_action(&tx, &a)?,
                    Msg::Feedback {
                        request_id,
                        instance,
                        label,
                        ts_ms,
                        reply,
                    } => {
                        let mut joined = Vec::new();
                        {
                            let mut st = tx.prepare_cached(
                                "SELECT instance, class FROM predictions WHERE request_id = ?1 AND (?2 IS NULL OR instance = ?2)",
                            )?;
                            let rows = st.query_map(params![request_id, instance], |r| {
                                Ok(FeedbackJoin {
                                    instance: r.get(0)?,
                                    class: r.get(1)?,
                                })
                            })?;
                            for r in rows {
                                joined.push(r?);
                            }
                        }
                        set_label(&tx, &request_id, instance, label, ts_ms)?;
                        fb_replies.push((reply, joined));
                    }
                }
            }
            tx.commit()
        })();
        match result {
            Ok(()) => {
                for a in acks {
                    a.send(Ok(()));
                }
                for (r, j) in fb_replies {
                    r.send(Ok(j));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "prediction log transaction failed");
                // The messages of a failed transaction are lost, and said so.
                for a in acks {
                    a.send(Err(err(&e)));
                }
                for (r, _) in fb_replies {
                    r.send(Err(err(&e)));
                }
            }
        }
    }
}

fn insert_predictions(tx: &Connection, rows: &[PredictionRow]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(
        "INSERT OR REPLACE INTO predictions (ts_ms, request_id, instance, segment, input_hash, spec_fingerprint, model_sha256, class, label_name, confidence, ood_score, is_ood, latency_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for r in rows {
        st.execute(params![
            r.ts_ms,
            r.request_id,
            r.instance,
            r.segment,
            r.input_hash,
            r.spec_fingerprint,
            r.model_sha256,
            r.class,
            r.label_name,
            r.confidence,
            r.ood_score,
            r.is_ood,
            r.latency_ms
        ])?;
    }
    Ok(())
}

fn update_shadow(tx: &Connection, s: &ShadowRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE predictions SET shadow_model_sha256 = ?3, shadow_class = ?4, shadow_confidence = ?5, shadow_ood_score = ?6, shadow_latency_ms = ?7, shadow_error = ?8 WHERE request_id = ?1 AND instance = ?2",
    )?
    .execute(params![
        s.request_id,
        s.instance,
        s.model_sha256,
        s.class,
        s.confidence,
        s.ood_score,
        s.latency_ms,
        s.error
    ])?;
    Ok(())
}

fn insert_action(tx: &Connection, a: &ActionRow) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO actions (ts_ms, window, action, rule, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![a.ts_ms, a.window, a.action, a.rule, a.detail])?;
    Ok(())
}

fn set_label(
    tx: &Connection,
    request_id: &str,
    instance: Option<i64>,
    label: i64,
    ts_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE predictions SET label = ?3, label_ts_ms = ?4 WHERE request_id = ?1 AND (?2 IS NULL OR instance = ?2)",
    )?
    .execute(params![request_id, instance, label, ts_ms])?;
    Ok(())
}

/// A labelled-feedback record for [`append`].
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRow {
    pub request_id: String,
    pub instance: Option<i64>,
    pub label: i64,
    pub ts_ms: i64,
}

/// Writes rows in one transaction without the writer thread: for replays
/// and imports of recorded traffic (e.g. `bridgeml demo`), through the same
/// statements the server uses.
pub fn append(
    path: &Path,
    predictions: &[PredictionRow],
    shadows: &[ShadowRow],
    actions: &[ActionRow],
    feedback: &[FeedbackRow],
) -> Result<()> {
    let db = |e: rusqlite::Error| ServeError::Log {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut conn = open(path)?;
    let tx = conn.transaction().map_err(db)?;
    insert_predictions(&tx, predictions).map_err(db)?;
    for s in shadows {
        update_shadow(&tx, s).map_err(db)?;
    }
    for a in actions {
        insert_action(&tx, a).map_err(db)?;
    }
    for f in feedback {
        set_label(&tx, &f.request_id, f.instance, f.label, f.ts_ms).map_err(db)?;
    }
    tx.commit().map_err(db)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(db)
}

/// A logged row as the shadow report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPair {
    pub ts_ms: i64,
    pub segment: String,
    pub class: i64,
    pub shadow_class: Option<i64>,
    pub shadow_error: Option<String>,
    pub label: Option<i64>,
}

/// Reads the rows of `[since, until)` (ms since the epoch) for the shadow report.
pub fn read_pairs(path: &Path, since: Option<i64>, until: Option<i64>) -> Result<Vec<LoggedPair>> {
    query_period(
        path,
        "SELECT ts_ms, segment, class, shadow_class, shadow_error, label FROM predictions WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms",
        since,
        until,
        |r| {
            Ok(LoggedPair {
                ts_ms: r.get(0)?,
                segment: r.get(1)?,
                class: r.get(2)?,
                shadow_class: r.get(3)?,
                shadow_error: r.get(4)?,
                label: r.get(5)?,
            })
        },
    )
}

/// A logged prediction as the steady-state report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPrediction {
    pub ts_ms: i64,
    pub segment: String,
    pub class: i64,
    pub confidence: f64,
    pub ood_score: Option<f64>,
    pub is_ood: Option<bool>,
    pub latency_ms: f64,
    pub label: Option<i64>,
}

/// Runs `sql` (with `?1` = since, `?2` = until, ms) read-only on `path`.
fn query_period<T>(
    path: &Path,
    sql: &str,
    since: Option<i64>,
    until: Option<i64>,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let db = |e: rusqlite::Error| ServeError::Log {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let conn = read_only(path)?;
    let mut st = conn.prepare(sql).map_err(db)?;
    let rows = st
        .query_map(
            params![since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX)],
            row,
        )
        .map_err(db)?;
    rows.collect::<std::result::Result<Vec<_>, _>>().map_err(db)
}

fn read_only(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(ServeError::Log {
            path: path.to_path_buf(),
            reason: "no such log file".into(),
        });
    }
    Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| {
        ServeError::Log {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

/// The predictions of `[since, until)` (ms since the epoch), oldest first.
pub fn read_predictions(
    path: &Path,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Vec<LoggedPrediction>> {
    query_period(
        path,
        "SELECT ts_ms, segment, class, confidence, ood_score, is_ood, latency_ms, label FROM predictions WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms, id",
        since,
        until,
        |r| {
            Ok(LoggedPrediction {
                ts_ms: r.get(0)?,
                segment: r.get(1)?,
                class: r.get(2)?,
                confidence: r.get(3)?,
                ood_score: r.get(4)?,
                is_ood: r.get(5)?,
                latency_ms: r.get(6)?,
                label: r.get(7)?,
            })
        },
    )
}

/// The policy actions of `[since, until)`, oldest first.
pub fn read_actions(path: &Path, since: Option<i64>, until: Option<i64>) -> Result<Vec<ActionRow>> {
    query_period(
        path,
        "SELECT ts_ms, window, action, rule, detail FROM actions WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms, id",
        since,
        until,
        |r| {
            Ok(ActionRow {
                ts_ms: r.get(0)?,
                window: r.get(1)?,
                action: r.get(2)?,
                rule: r.get(3)?,
                detail: r.get(4)?,
            })
        },
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every logged `(request_id, instance)`, for audits and the durability test.
pub fn request_ids(path: &Path) -> Result<Vec<(String, i64)>> {
    let db = |e: rusqlite::Error| ServeError::Log {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let conn = Connection::open(path).map_err(db)?;
    let mut st = conn
        .prepare("SELECT request_id, instance FROM predictions ORDER BY id")
        .map_err(db)?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db)?;
    rows.collect::<std::result::Result<Vec<_>, _>>().map_err(db)
}
