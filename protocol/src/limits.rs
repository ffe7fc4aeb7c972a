//! Limits the decoder enforces while it reads, before it buffers more.

/// Bounds on what one frame may hold. Every one is checked as bytes arrive, so a peer can never
/// make the decoder buffer more than `max_frame_bytes()` for a frame it will reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line, in bytes (the longest real command, `UNSUBSCRIBE`, has 11).
    pub max_command_len: usize,
    /// Most header lines in one frame.
    pub max_headers: usize,
    /// Longest header line (name, colon and value), in bytes, before unescaping.
    pub max_header_line_len: usize,
    /// Largest body, in bytes.
    pub max_body_len: usize,
}

impl Limits {
    /// Default body limit: 16 MiB. Users send large messages and hit RabbitMQ's 4 MiB and
    /// Spring's 64 KiB limits; 16 MiB covers a scanned page or a CSV chunk.
    pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

    /// The most bytes a frame can occupy under these limits (an upper bound for buffers).
    pub fn max_frame_bytes(&self) -> usize {
        let line_end = 2; // CRLF at most
        self.max_command_len
            + line_end
            + self.max_headers * (self.max_header_line_len + line_end)
            + line_end
            + self.max_body_len
            + 1
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_command_len: 64,
            max_headers: 128,
            max_header_line_len: 16 * 1024,
            max_body_len: Self::DEFAULT_MAX_BODY,
        }
    }
}
