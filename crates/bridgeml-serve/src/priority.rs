//! CPU priority of the server's background threads (shadow worker, window
//! evaluator, log flusher), so that they never delay the request path.

/// CPU priority of a background thread (Linux; elsewhere a no-op).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackgroundPriority {
    /// `SCHED_IDLE`: runs on CPU time nothing else wants, and any request
    /// thread that wakes preempts it at once. (At nice 19 under EEVDF a
    /// woken request thread could still wait out the background thread's
    /// time slice.)
    Idle,
    /// `SCHED_OTHER` at nice 10: below the request path, never starved.
    Low,
}

fn set_background_priority(p: BackgroundPriority) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread (pid 0 / its own
    // tid) with a valid sched_param; failure only leaves the priority as is.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        let policy = match p {
            BackgroundPriority::Idle => libc::SCHED_IDLE,
            BackgroundPriority::Low => libc::SCHED_OTHER,
        };
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, policy, &param) != 0 {
            tracing::debug!(?p, "could not change the thread's scheduling policy");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = p;
}

/// A background thread's priority: `SCHED_IDLE`, raised to nice 10 while
/// something waits on the thread or it has fallen behind (on a saturated
/// machine idle time never comes). Changed only when it must be.
pub(crate) struct ThreadPriority(BackgroundPriority);

impl ThreadPriority {
    /// Puts the calling thread at `SCHED_IDLE`.
    pub(crate) fn idle() -> Self {
        set_background_priority(BackgroundPriority::Idle);
        ThreadPriority(BackgroundPriority::Idle)
    }

    /// Nice 10 while `raised`, `SCHED_IDLE` otherwise.
    pub(crate) fn raise_while(&mut self, raised: bool) {
        let wanted = if raised {
            BackgroundPriority::Low
        } else {
            BackgroundPriority::Idle
        };
        if wanted != self.0 {
            self.0 = wanted;
            set_background_priority(wanted);
        }
    }
}
