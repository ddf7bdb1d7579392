//! Long-lived threads that report their end on one channel, so the main
//! thread waits on that channel (beside the signals) instead of polling
//! join handles, and shutdown waits for each thread's report.

use crossbeam_channel::{Receiver, Sender, unbounded};
use std::thread::ThreadId;

/// A thread whose body returned or unwound (a panic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub id: ThreadId,
    pub name: String,
}

/// Wraps the bodies of threads that report their end. Passed to every
/// component's `spawn`; the receiver stays with whoever waits.
#[derive(Clone)]
pub struct Ends {
    // Unbounded: each thread sends once, at its end, and must never block
    // there (the main thread may no longer be listening).
    tx: Sender<Ended>,
}

impl Ends {
    pub fn new() -> (Ends, Receiver<Ended>) {
        let (tx, rx) = unbounded();
        (Ends { tx }, rx)
    }

    /// A thread's body that reports the thread's end (its id and name) when
    /// `body` returns or unwinds: `Builder::spawn(ends.report(body))`.
    pub fn report(&self, body: impl FnOnce() + Send + 'static) -> impl FnOnce() + Send + 'static {
        let ends = self.tx.clone();
        move || {
            let _report = Report { ends };
            body();
        }
    }
}

/// Sends the thread's end when dropped: at the end of its body, or while a
/// panic unwinds it.
struct Report {
    ends: Sender<Ended>,
}

impl Drop for Report {
    fn drop(&mut self) {
        let thread = std::thread::current();
        let _ = self.ends.send(Ended {
            id: thread.id(),
            name: thread.name().unwrap_or("?").to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread::JoinHandle;
    use std::time::Duration;

    fn spawn(ends: &Ends, name: &str, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(ends.report(body))
            .unwrap()
    }

    #[test]
    fn a_thread_reports_its_end_whether_it_returns_or_panics() {
        let (ends, ended) = Ends::new();
        let (go, wait) = crossbeam_channel::bounded::<()>(0);
        let quiet = spawn(&ends, "quiet", move || {
            let _ = wait.recv();
        });
        // Nothing is reported while the thread runs.
        assert!(ended.recv_timeout(Duration::from_millis(50)).is_err());
        go.send(()).unwrap();
        let end = ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(end.name, "quiet");
        assert_eq!(end.id, quiet.thread().id());
        quiet.join().unwrap();

        let panicking = spawn(&ends, "panics", || panic!("on purpose"));
        let end = ended.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(end.name, "panics");
        assert_eq!(end.id, panicking.thread().id());
        assert!(panicking.join().is_err());
    }
}
