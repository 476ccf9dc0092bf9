//! IPC between the node and one handler: tonic over a unix socket in the egress' private directory. The handler
//! serves `Handler`; the node calls it (every call with a deadline) and reads the `Run` event stream back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::proto::handler_client::HandlerClient;

/// The socket's file name inside the private directory.
pub const SOCKET_NAME: &str = "handler.sock";

#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    #[error("cannot connect to the handler socket: {0}")]
    Connect(String),
    #[error("handler call {call} missed its {deadline_ms} ms deadline")]
    Deadline { call: &'static str, deadline_ms: u128 },
    #[error("handler call {call} failed: {status}")]
    Call { call: &'static str, status: tonic::Status },
}

pub type Client = HandlerClient<Channel>;

pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// Connects to the handler's socket; fails at once if nobody listens yet.
pub async fn connect(socket: &Path) -> Result<Client, IpcError> {
    let socket = socket.to_path_buf();
    // The URI is a placeholder: the connector below always dials the unix socket.
    let channel = Endpoint::from_static("http://handler.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|e| IpcError::Connect(e.to_string()))?;
    Ok(HandlerClient::new(channel))
}

/// Runs one IPC call with a deadline.
pub async fn with_deadline<T>(
    call: &'static str,
    deadline: Duration,
    fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, IpcError> {
    match tokio::time::timeout(deadline, fut).await {
        Err(_) => Err(IpcError::Deadline { call, deadline_ms: deadline.as_millis() }),
        Ok(Err(status)) => Err(IpcError::Call { call, status }),
        Ok(Ok(resp)) => Ok(resp.into_inner()),
    }
}
