//! `remotemedia.v1.Sessions/Stream`: a session over a gRPC bidirectional stream, for
//! server-to-server clients. Same messages as the WebSocket; the pipeline comes from
//! the `remotemedia-pipeline` metadata.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::pb::session_frame::Frame as PbFrame;
use crate::pb::sessions_server::{Sessions, SessionsServer};
use crate::pb::SessionFrame;
use crate::protocol::ErrorKind;
use crate::server::{Refusal, Shared};
use crate::session::{run_session, Frame, Transport};

/// The metadata key naming the pipeline.
pub const PIPELINE_METADATA: &str = "remotemedia-pipeline";

/// The service, its message size bounded by the server's frame limit.
pub(crate) fn service(shared: Arc<Shared>) -> SessionsServer<GrpcSessions> {
    let limit = shared.limits.max_frame_bytes;
    SessionsServer::new(GrpcSessions { shared })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

/// The `Sessions` service.
pub(crate) struct GrpcSessions {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl Sessions for GrpcSessions {
    type StreamStream = ReceiverStream<Result<SessionFrame, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<SessionFrame>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request.remote_addr();
        let headers = request.metadata().clone().into_headers();
        if let Err(r) = self.shared.authorize(&headers, peer) {
            return Err(match r {
                Refusal::Auth(code, message) if code == axum::http::StatusCode::UNAUTHORIZED => {
                    Status::unauthenticated(message)
                }
                Refusal::Auth(_, message) => Status::permission_denied(message),
                Refusal::Origin(o) => Status::permission_denied(format!("origin `{o}` refused")),
            });
        }
        let Some(pipeline) = headers.get(PIPELINE_METADATA).and_then(|v| v.to_str().ok()) else {
            return Err(Status::invalid_argument(format!(
                "name the pipeline in the `{PIPELINE_METADATA}` metadata"
            )));
        };
        let (pipeline, slot, id) = self.shared.admit(pipeline).map_err(|(kind, message)| {
            tracing::info!(
                pipeline,
                peer = ?peer,
                outcome = kind.as_str(),
                error = %message,
                "session refused"
            );
            let code = match kind {
                ErrorKind::UnknownPipeline => Code::NotFound,
                ErrorKind::TooManySessions => Code::ResourceExhausted,
                _ => Code::Unavailable,
            };
            Status::new(code, message)
        })?;
        let (tx, rx) = mpsc::channel(16);
        let shared = Arc::clone(&self.shared);
        let limit = shared.limits.max_frame_bytes;
        let inbound = request.into_inner();
        tokio::spawn(async move {
            let transport = GrpcTransport {
                inbound,
                outbound: tx,
                limit,
            };
            run_session(shared, pipeline, id, peer, "grpc", transport).await;
            drop(slot);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

struct GrpcTransport {
    inbound: Streaming<SessionFrame>,
    outbound: mpsc::Sender<Result<SessionFrame, Status>>,
    limit: usize,
}

impl Transport for GrpcTransport {
    async fn recv(&mut self) -> Option<Result<Frame, String>> {
        loop {
            return match self.inbound.next().await? {
                Ok(SessionFrame { frame: Some(PbFrame::Text(t)) }) => Some(Ok(Frame::Text(t))),
                Ok(SessionFrame { frame: Some(PbFrame::Binary(b)) }) => Some(Ok(Frame::Binary(b))),
                Ok(SessionFrame { frame: None }) => continue,
                Err(s) if s.code() == Code::OutOfRange || s.code() == Code::ResourceExhausted => {
                    Some(Err(format!(
                        "a frame is larger than the {} bytes this server allows (--max-frame-bytes); the session is closed",
                        self.limit
                    )))
                }
                Err(_) => None,
            };
        }
    }

    async fn send(&mut self, frame: Frame) -> bool {
        let frame = match frame {
            Frame::Text(t) => PbFrame::Text(t),
            Frame::Binary(b) => PbFrame::Binary(b),
        };
        self.outbound
            .send(Ok(SessionFrame { frame: Some(frame) }))
            .await
            .is_ok()
    }
}
