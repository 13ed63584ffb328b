//! The session protocol's messages: JSON objects with a `type`, the same over a
//! WebSocket (text frames) and over gRPC (`SessionFrame.text`). Audio travels beside
//! them as binary frames: PCM from the client in the format its `start` gave, and
//! after each `audio` header from the server, that many bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use remotemedia_audio::pcm::PcmFormat;

/// The audio a client will send as binary frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFormat {
    /// Sample encoding: `s16le`, `f32le`, `u8`, `mulaw` or `alaw`.
    pub format: PcmFormat,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels (1 to 8).
    pub channels: u16,
}

/// A message from the client.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Opens the session; must come first.
    Start {
        /// The PCM format of binary frames (only for audio input).
        #[serde(default)]
        input: Option<InputFormat>,
        /// Overrides of the params the manifest declares overridable
        /// (`metadata.overridable`), keyed `node_id.param`.
        #[serde(default)]
        params: Option<Map<String, Value>>,
    },
    /// One item in the JSON form (`$audio`, `$tensor`, plain JSON).
    Item {
        /// The item.
        item: Value,
    },
    /// Barge-in: drop everything queued, reset the nodes; answered by `flushed`.
    Flush,
    /// No more input: the remaining outputs, then `summary`, then the close.
    End,
    /// Answered by `pong`.
    Ping,
}

impl ClientMessage {
    /// The message types a client may send, for error messages.
    pub const TYPES: [&'static str; 5] = ["start", "item", "flush", "end", "ping"];
}

/// A message to the client.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The session is open.
    Ready {
        /// Its id (in the server's logs and metrics).
        session: String,
    },
    /// A non-audio output.
    Output {
        /// The sink node's id.
        sink: String,
        /// The item in the JSON form.
        item: Value,
        /// Its time, when it has one (audio, or a map with `pts_us`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pts_us: Option<i64>,
    },
    /// An audio output: its bytes follow in one binary frame.
    Audio {
        /// The sink node's id.
        sink: String,
        /// Time of its first frame (µs from the start of the stream).
        pts_us: i64,
        /// Always `s16le`.
        format: &'static str,
        /// Frames per second.
        sample_rate: u32,
        /// Interleaved channels.
        channels: u16,
        /// Length of the binary frame that follows.
        bytes: usize,
    },
    /// Something went wrong: a session error closes the session after it; a bad
    /// client message does not, where going on is safe.
    Error {
        /// What and why.
        message: String,
        /// The node that failed, for node errors.
        #[serde(skip_serializing_if = "Option::is_none")]
        node_id: Option<String>,
        /// A category: one of [`ErrorKind`], or for node errors the node's error kind
        /// (`invalid_input`, `timeout`, …).
        kind: String,
    },
    /// The answer to `flush`: what was queued is gone, the nodes start clean.
    Flushed,
    /// After `end` and the last output: what the session did.
    Summary {
        /// Counters and latencies.
        metrics: Value,
    },
    /// The answer to `ping`.
    Pong,
}

/// Categories of [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A text frame that is not a JSON object with a known `type`, or with bad fields.
    BadMessage,
    /// A message out of order (`item` before `start`, a second `start`, …).
    Protocol,
    /// The `start` message's input format or params are not acceptable.
    BadStart,
    /// An item the pipeline cannot take (bad JSON form, audio without an input format).
    BadInput,
    /// A frame larger than the server allows.
    FrameTooLarge,
    /// Input arrives faster than the server allows (a multiple of real time).
    TooFast,
    /// No message for longer than the idle timeout.
    IdleTimeout,
    /// A node failed; the session ends.
    Node,
    /// The server is shutting down.
    ShuttingDown,
    /// The server could not run the session.
    Internal,
    /// The server runs as many sessions as it may.
    TooManySessions,
    /// No pipeline of that name.
    UnknownPipeline,
}

impl ErrorKind {
    /// The name sent as `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadMessage => "bad_message",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BadStart => "bad_start",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::FrameTooLarge => "frame_too_large",
            ErrorKind::TooFast => "too_fast",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::Node => "node",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::Internal => "internal",
            ErrorKind::TooManySessions => "too_many_sessions",
            ErrorKind::UnknownPipeline => "unknown_pipeline",
        }
    }
}

impl ServerMessage {
    /// The message as a JSON text frame.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                r#"{{"type":"error","message":"cannot encode a message: {e}","kind":"internal"}}"#
            )
        })
    }

    /// An error message.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            message: message.into(),
            node_id: None,
            kind: kind.as_str().to_string(),
        }
    }
}

/// Parses a client's text frame, saying what is wrong in terms of the protocol.
pub fn parse_client(text: &str) -> Result<ClientMessage, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!("a text frame must be a JSON object with a `type`; this one is not JSON ({e})")
    })?;
    let Some(obj) = value.as_object() else {
        return Err("a text frame must be a JSON object with a `type`".to_string());
    };
    match obj.get("type") {
        None => return Err("the message has no `type`".to_string()),
        Some(Value::String(t)) if !ClientMessage::TYPES.contains(&t.as_str()) => {
            return Err(format!(
                "unknown message type `{t}`; expected one of {}",
                ClientMessage::TYPES
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        Some(Value::String(_)) => {}
        Some(_) => return Err("`type` must be a string".to_string()),
    }
    let kind = obj["type"].as_str().unwrap_or_default().to_string();
    // serde lets unit variants of a tagged enum carry anything: say so instead.
    if matches!(kind.as_str(), "flush" | "end" | "ping") {
        if let Some(extra) = obj.keys().find(|k| *k != "type") {
            return Err(format!(
                "bad `{kind}` message: unknown field `{extra}`; `{kind}` has only `type`"
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| format!("bad `{kind}` message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_with_input_and_params() {
        let m = parse_client(
            r#"{"type":"start","input":{"format":"s16le","sample_rate":16000,"channels":1},"params":{"vad.threshold":0.6}}"#,
        )
        .unwrap();
        let ClientMessage::Start { input, params } = m else {
            panic!("not start")
        };
        assert_eq!(
            input,
            Some(InputFormat {
                format: PcmFormat::S16le,
                sample_rate: 16000,
                channels: 1
            })
        );
        assert_eq!(params.unwrap()["vad.threshold"], json!(0.6));
        assert_eq!(
            parse_client(r#"{"type":"start"}"#).unwrap(),
            ClientMessage::Start {
                input: None,
                params: None
            }
        );
    }

    #[test]
    fn bad_messages_say_why() {
        assert!(parse_client("{oops").unwrap_err().contains("not JSON"));
        assert_eq!(
            parse_client("[1]").unwrap_err(),
            "a text frame must be a JSON object with a `type`"
        );
        assert_eq!(parse_client("{}").unwrap_err(), "the message has no `type`");
        assert_eq!(
            parse_client(r#"{"type":"stop"}"#).unwrap_err(),
            "unknown message type `stop`; expected one of `start`, `item`, `flush`, `end`, `ping`"
        );
        let e = parse_client(
            r#"{"type":"start","input":{"format":"s24","sample_rate":1,"channels":1}}"#,
        )
        .unwrap_err();
        assert!(e.starts_with("bad `start` message: "), "{e}");
        assert!(e.contains("s24"), "{e}");
        let e = parse_client(r#"{"type":"ping","x":1}"#).unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let audio = ServerMessage::Audio {
            sink: "out".into(),
            pts_us: 20000,
            format: "s16le",
            sample_rate: 16000,
            channels: 1,
            bytes: 640,
        };
        assert_eq!(
            serde_json::to_value(&audio).unwrap(),
            json!({"type":"audio","sink":"out","pts_us":20000,"format":"s16le","sample_rate":16000,"channels":1,"bytes":640})
        );
        assert_eq!(
            ServerMessage::error(ErrorKind::FrameTooLarge, "too big").to_text(),
            r#"{"type":"error","message":"too big","kind":"frame_too_large"}"#
        );
        assert_eq!(ServerMessage::Flushed.to_text(), r#"{"type":"flushed"}"#);
        assert_eq!(
            ServerMessage::Ready {
                session: "s1".into()
            }
            .to_text(),
            r#"{"type":"ready","session":"s1"}"#
        );
    }
}
