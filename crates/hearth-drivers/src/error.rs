//! The one error type of the drivers.
//!
//! The variants are what the agent decides on: `Unreachable` means "try again later, the job is not lost";
//! `Rejected` means the printer understood and said no (its message is kept); `Protocol` means the two
//! sides disagree about the protocol (a bug or an unsupported version).

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a driver operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The printer or its host software could not be reached (connection refused, timeout, socket closed).
    #[error("printer at {endpoint} unreachable")]
    Unreachable {
        /// Where the driver tried to go.
        endpoint: String,
        /// The transport error.
        #[source]
        source: BoxError,
    },
    /// The printer refused the credentials.
    #[error("printer at {endpoint} refused the credentials: {message}")]
    Unauthorized {
        /// Where the driver went.
        endpoint: String,
        /// The printer's message.
        message: String,
    },
    /// The printer understood the request and refused it (busy, not operational, no such file ...).
    #[error("printer refused {operation}: {message}")]
    Rejected {
        /// What the driver asked for ("start", "upload", ...).
        operation: &'static str,
        /// HTTP status or JSON-RPC error code, when there is one.
        code: Option<i64>,
        /// The printer's own message.
        message: String,
    },
    /// The printer answered something this driver does not understand.
    #[error("protocol error during {operation}: {message}")]
    Protocol {
        /// What the driver asked for.
        operation: &'static str,
        /// What was wrong.
        message: String,
        /// The underlying error (JSON decoding, ...), when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// Reading the file to upload failed.
    #[error("cannot read {path} for upload")]
    File {
        /// The local file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The driver does not support this operation.
    #[error("{operation} is not supported by the {kind:?} driver")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// Which driver.
        kind: crate::model::DriverKind,
    },
    /// The driver configuration is unusable.
    #[error("invalid driver configuration: {0}")]
    Config(String),
}

/// An error with its causes, `a: b: c`, each said once: a transport error's own text rarely says
/// why (reqwest's "error sending request" keeps the refused certificate in its sources).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        next = cause.source();
    }
    out
}

impl DriverError {
    /// Whether the failure is the printer being unreachable (the agent shows it offline and retries).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}
