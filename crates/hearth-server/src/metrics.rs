//! Prometheus text exposition (format 0.0.4) of a few counters, kept as atomics: no registry needed for
//! this handful, and nothing here can block a request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub http_requests: [AtomicU64; 5],
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub uploads_completed: AtomicU64,
    pub download_bytes: AtomicU64,
    pub audit_entries: AtomicU64,
    /// Audit entries written to the syslog collector (`[audit] syslog`), and failed tries.
    pub audit_forwarded: AtomicU64,
    pub audit_forward_failures: AtomicU64,
    pub notifications_delivered: AtomicU64,
    pub notifications_retried: AtomicU64,
    pub notifications_failed: AtomicU64,
    pub camera_frames: AtomicU64,
    pub camera_frames_refused: AtomicU64,
    /// Stored authenticator secrets the key file did not open at start (the wrong `secret.key`).
    pub secrets_unopenable: AtomicU64,
}

impl Metrics {
    /// Count a response by status class (1xx..5xx).
    pub fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http_requests[class].fetch_add(1, Relaxed);
    }

    pub fn render(&self, blobs_stored: i64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hearth_http_requests_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE hearth_http_requests_total counter");
        for (i, c) in self.http_requests.iter().enumerate() {
            let _ = writeln!(
                out,
                "hearth_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        let counters = [
            (
                "hearth_logins_total{result=\"ok\"}",
                "Login attempts by result.",
                &self.logins_ok,
            ),
            (
                "hearth_logins_total{result=\"failed\"}",
                "",
                &self.logins_failed,
            ),
            (
                "hearth_logins_total{result=\"throttled\"}",
                "",
                &self.logins_throttled,
            ),
            (
                "hearth_upload_bytes_total",
                "Sealed bytes received.",
                &self.upload_bytes,
            ),
            (
                "hearth_uploads_completed_total",
                "Uploads verified and stored.",
                &self.uploads_completed,
            ),
            (
                "hearth_download_bytes_total",
                "Sealed bytes served.",
                &self.download_bytes,
            ),
            (
                "hearth_audit_entries_total",
                "Audit entries appended by this process.",
                &self.audit_entries,
            ),
            (
                "hearth_audit_forwarded_total",
                "Audit entries this process wrote to the syslog collector ([audit] syslog).",
                &self.audit_forwarded,
            ),
            (
                "hearth_audit_forward_failures_total",
                "Failed tries to reach or write to the syslog collector (entries wait and go later).",
                &self.audit_forward_failures,
            ),
            (
                "hearth_notification_tries_total{result=\"delivered\"}",
                "Notification delivery tries by outcome (retry: to be tried again).",
                &self.notifications_delivered,
            ),
            (
                "hearth_notification_tries_total{result=\"retry\"}",
                "",
                &self.notifications_retried,
            ),
            (
                "hearth_notification_tries_total{result=\"failed\"}",
                "",
                &self.notifications_failed,
            ),
            (
                "hearth_camera_frames_total{result=\"kept\"}",
                "Sealed camera frames agents sent, by outcome (refused: malformed, too large, stale epoch).",
                &self.camera_frames,
            ),
            (
                "hearth_camera_frames_total{result=\"refused\"}",
                "",
                &self.camera_frames_refused,
            ),
        ];
        for (name, help, c) in counters {
            let base = name.split('{').next().unwrap_or(name);
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {base} {help}");
                let _ = writeln!(out, "# TYPE {base} counter");
            }
            let _ = writeln!(out, "{name} {}", c.load(Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP hearth_blobs_stored Distinct sealed blobs stored."
        );
        let _ = writeln!(out, "# TYPE hearth_blobs_stored gauge");
        let _ = writeln!(out, "hearth_blobs_stored {blobs_stored}");
        let _ = writeln!(
            out,
            "# HELP hearth_secrets_unopenable Stored second-factor secrets the key file (secret.key) \
             did not open at start: not 0, it is the wrong file and their members cannot log in."
        );
        let _ = writeln!(out, "# TYPE hearth_secrets_unopenable gauge");
        let _ = writeln!(
            out,
            "hearth_secrets_unopenable {}",
            self.secrets_unopenable.load(Relaxed)
        );
        out
    }
}
