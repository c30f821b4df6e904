//! CPU priority of the server's background threads (shadow worker, window
//! evaluator, log flusher), so that they never delay the request path, and
//! CPU pinning of the threads that run the model (`[server] inference_cpus`).

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

/// How many CPU ids a `cpu_set_t` holds.
#[cfg(target_os = "linux")]
const CPU_SET_CAPACITY: usize = 8 * std::mem::size_of::<libc::cpu_set_t>();

/// The CPUs this process may run on, ascending (`None` where unknown: not
/// Linux, or the call failed).
pub(crate) fn allowed_cpus() -> Option<Vec<usize>> {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and the kernel
    // writes at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..CPU_SET_CAPACITY)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Restricts the calling thread to `cpus`.
pub(crate) fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: as in `allowed_cpus`; CPU_SET is only given ids below the
    // set's capacity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < CPU_SET_CAPACITY) {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpus;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "CPU pinning is supported on Linux only",
        ))
    }
}

thread_local! {
    /// Whether this thread already applied `inference_cpus`.
    static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Pins the calling thread to `cpus` the first time it is called on it (the
/// blocking pool and the async workers reuse their threads), warning once per
/// thread on failure.
pub(crate) fn pin_once(cpus: &[usize]) {
    if PINNED.with(|p| p.replace(true)) {
        return;
    }
    if let Err(e) = pin_current_thread(cpus) {
        tracing::warn!(?cpus, "cannot pin an inference thread: {e}");
    }
}
