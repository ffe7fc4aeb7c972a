//! Entry points for the fuzz targets (`fuzz/`) and their corpus replay
//! (`tests/fuzz_corpus.rs`), behind the `fuzzing` feature: the server's own WebSocket readers,
//! a STOMP session over an in-memory pipe, and the reconcile job's CSV reading. Not an API:
//! absent from a normal build and hidden from the docs. A feature rather than public modules,
//! so that the public API stays what `lib.rs` lists and nothing here is built into a server.

pub use crate::processors::reconcile::fuzzing::{read_csv, CsvError, CsvRead, KeyedRow};
pub use crate::transport::sockjs::websocket::fuzzing::{sockjs_messages, SockJsRead};
pub use crate::transport::ws::frame::client_frame;
pub use crate::transport::ws::fuzzing::{ws_session, Step, WsReader};
