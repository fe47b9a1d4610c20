//! What can go wrong talking to a server, each as one line a user can act on.

use std::time::Duration;

pub type Result<T> = std::result::Result<T, RemoteError>;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot connect to {url}: {detail}; is the server running, and is the address right?")]
    Connect { url: String, detail: String },
    #[error(
        "{url} refused the request (HTTP {status}: {message}); give the API key in the variable named by --api-key-env"
    )]
    Auth {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: HTTP 404: {message}{hint}")]
    NotFound {
        url: String,
        message: String,
        /// What to do about it: the model list, or the endpoint's path.
        hint: String,
    },
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: the server {what} within {} s; raise {option}", .after.as_secs_f32())]
    Timeout {
        url: String,
        /// "did not accept the connection", "sent nothing", ...
        what: &'static str,
        after: Duration,
        option: &'static str,
    },
    #[error("{url}: the answer is not what an OpenAI-compatible server sends: {detail}")]
    Malformed { url: String, detail: String },
    #[error("{url}: the stream broke off before the server said it was done ({detail})")]
    Truncated { url: String, detail: String },
    #[error("the server's error: {0}")]
    Server(String),
    #[error("{what} is not available from this server: {why}")]
    Unsupported { what: String, why: String },
    #[error("cancelled")]
    Cancelled,
}

impl RemoteError {
    /// Worth sending again after a pause: the server is busy or failing for
    /// a moment (429 and the 5xx codes that proxies and servers use for it).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Status { status, .. } if matches!(status, 429 | 500 | 502 | 503 | 504))
    }
}
