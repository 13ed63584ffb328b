//! `GET /v1/sessions/{pipeline}`: a session over a WebSocket. Text frames are the JSON
//! messages, binary frames PCM ([`crate::protocol`]).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::StreamExt;
use tonic::transport::server::TcpConnectInfo;

use crate::protocol::ServerMessage;
use crate::server::Shared;
use crate::session::{run_session, Frame, Transport};

/// The subprotocol the web page asks for (beside its `bearer.TOKEN`).
pub const SUBPROTOCOL: &str = "remotemedia";

/// Close code for "try again later" (too many sessions, shutting down).
const TRY_AGAIN_LATER: u16 = 1013;
/// Close code for a policy violation (a session error closed it).
const POLICY: u16 = 1008;

/// Upgrades to a session once the token and origin are right. A refused session
/// (unknown pipeline, too many, shutting down) still upgrades, so that a browser can
/// read why in the error message before the close.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Path(pipeline): Path<String>,
    Extension(info): Extension<TcpConnectInfo>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(r) = shared.authorize(&headers, info.remote_addr) {
        return r.into_response();
    }
    let peer = info.remote_addr;
    // A browser that offered subprotocols must get one of them back; offering the
    // token as one (`bearer.TOKEN`) is how a page authenticates.
    let offered: Vec<String> = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    let mut choices = vec![SUBPROTOCOL.to_string()];
    choices.extend(offered.into_iter().filter(|p| p.starts_with("bearer.")));
    let limit = shared.limits.max_frame_bytes;
    let admitted = shared.admit(&pipeline);
    upgrade
        .protocols(choices)
        // tungstenite refuses larger frames itself; a little above the limit, so that
        // the session sees the frame's size and says so.
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            let mut transport = WsTransport { socket, limit };
            match admitted {
                Err((kind, message)) => {
                    tracing::info!(
                        pipeline = %pipeline,
                        peer = ?peer,
                        outcome = kind.as_str(),
                        error = %message,
                        "session refused"
                    );
                    let msg = ServerMessage::error(kind, message);
                    let _ = transport
                        .socket
                        .send(Message::Text(msg.to_text().into()))
                        .await;
                    close(&mut transport.socket, TRY_AGAIN_LATER, kind.as_str()).await;
                }
                Ok((pipeline, slot, id)) => {
                    let outcome =
                        run_session(shared, pipeline, id, peer, "websocket", &mut transport).await;
                    let code = match outcome {
                        crate::session::Outcome::Completed => 1000,
                        _ => POLICY,
                    };
                    close(&mut transport.socket, code, "").await;
                    drop(slot);
                }
            }
        })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}

struct WsTransport {
    socket: WebSocket,
    limit: usize,
}

impl Transport for &mut WsTransport {
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        loop {
            return match self.socket.next().await? {
                Ok(Message::Text(t)) => Some(Ok(Frame::Text(t.as_str().to_string()))),
                Ok(Message::Binary(b)) => Some(Ok(Frame::Binary(b))),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => None,
                Err(e) => {
                    let text = e.to_string();
                    if text.contains("Space limit exceeded")
                        || text.contains("too long")
                        || text.contains("Message too big")
                    {
                        Some(Err(format!(
                            "a frame is larger than the {} bytes this server allows (--max-frame-bytes); the session is closed",
                            self.limit
                        )))
                    } else {
                        None
                    }
                }
            };
        }
    }

    async fn send(&mut self, frame: Frame) -> bool {
        let message = match frame {
            Frame::Text(t) => Message::Text(t.into()),
            Frame::Binary(b) => Message::Binary(b),
        };
        self.socket.send(message).await.is_ok()
    }
}
