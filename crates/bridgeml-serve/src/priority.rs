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

/// Whether the calling thread now has priority `p`.
fn set_background_priority(p: BackgroundPriority) -> bool {
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
        libc::sched_setscheduler(0, policy, &param) == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = p;
        true
    }
}

/// A background thread's priority: `SCHED_IDLE`, raised to nice 10 while
/// something waits on the thread or it has fallen behind (on a saturated
/// machine idle time never comes). Changed only when it must be.
///
/// Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least
/// 10 (Linux checks the nice value against it); without them the thread stays
/// at `SCHED_IDLE` and says so once.
pub(crate) struct ThreadPriority {
    current: BackgroundPriority,
    warned: bool,
}

impl ThreadPriority {
    /// Puts the calling thread at `SCHED_IDLE`.
    pub(crate) fn idle() -> Self {
        if !set_background_priority(BackgroundPriority::Idle) {
            tracing::debug!("could not move the thread to SCHED_IDLE");
        }
        ThreadPriority {
            current: BackgroundPriority::Idle,
            warned: false,
        }
    }

    /// Nice 10 while `raised`, `SCHED_IDLE` otherwise.
    pub(crate) fn raise_while(&mut self, raised: bool) {
        let wanted = if raised {
            BackgroundPriority::Low
        } else {
            BackgroundPriority::Idle
        };
        if wanted == self.current {
            return;
        }
        if set_background_priority(wanted) {
            self.current = wanted;
        } else if !self.warned {
            self.warned = true;
            tracing::warn!(
                thread = std::thread::current().name().unwrap_or("?"),
                "cannot raise this background thread above SCHED_IDLE (needs CAP_SYS_NICE or RLIMIT_NICE >= 10): on a saturated host it runs late"
            );
        }
    }
}
