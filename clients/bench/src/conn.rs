//! Client websockets: opening one with small buffers (thousands are held at once), and the
//! writer task that owns a socket's sending half, fed by a channel so the sender schedule
//! and the reader (pongs) can both write.

use anyhow::{Context, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// A client websocket.
pub type Ws = WebSocketStream<TcpStream>;
/// Its receiving half.
pub type WsStream = SplitStream<Ws>;

/// Buffers sized for ~100-byte messages: tungstenite's defaults (128 KiB each way) would
/// cost the generator gigabytes at 18,000 connections.
pub fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(16 * 1024 * 1024))
        .max_frame_size(Some(16 * 1024 * 1024))
}

/// Opens a websocket to `url`, offering `subprotocol` if given.
pub async fn open(url: &str, subprotocol: Option<&str>) -> anyhow::Result<Ws> {
    let mut request = url.into_client_request().context("websocket URL")?;
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol)?);
    }
    let uri = request.uri();
    let host = uri.host().context("URL without host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    stream.set_nodelay(true)?;
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
            .await
            .context("websocket upgrade")?;
    if let Some(protocol) = subprotocol {
        let echoed = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if echoed != Some(protocol) {
            bail!("the server did not accept subprotocol {protocol}");
        }
    }
    Ok(ws)
}

/// Reads the next text frame, answering nothing; `None` when the socket closed.
pub async fn next_text(stream: &mut WsStream) -> Option<anyhow::Result<Utf8Bytes>> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return Some(Ok(text)),
            Ok(Message::Close(frame)) => {
                let why = frame.map(|f| format!("{} {}", f.code, f.reason));
                return Some(Err(anyhow::anyhow!("closed by the server: {why:?}")));
            }
            Ok(_) => continue,
            Err(e) => return Some(Err(e.into())),
        }
    }
}

/// The sending half of a connection: a channel to its writer task.
#[derive(Clone)]
pub struct Outbound {
    tx: mpsc::UnboundedSender<Message>,
}

impl Outbound {
    /// Queues a text frame; false if the writer has stopped.
    pub fn text(&self, text: String) -> bool {
        self.tx.send(Message::text(text)).is_ok()
    }

    /// Queues a close frame.
    pub fn close(&self) -> bool {
        self.tx.send(Message::Close(None)).is_ok()
    }
}

/// Splits a websocket: the writer runs as its own task (feeding what is queued, flushing
/// when the queue is empty); the reading half is returned.
pub fn split(ws: Ws) -> (Outbound, WsStream, tokio::task::JoinHandle<()>) {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, rx));
    (Outbound { tx }, stream, writer)
}

async fn write_loop(mut sink: SplitSink<Ws, Message>, mut rx: mpsc::UnboundedReceiver<Message>) {
    while let Some(message) = rx.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.feed(message).await.is_err() {
            return;
        }
        while let Ok(message) = rx.try_recv() {
            if sink.feed(message).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() || closing {
            return;
        }
    }
}
