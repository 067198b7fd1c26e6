//! The bare websocket ceiling: the least a server must do to fan chat messages out, to
//! show how close Triad comes to what the machine allows. tokio-tungstenite, no
//! authentication, no store, no protocol: a client connects to `/?room=<room>`, every text
//! frame it sends goes to every member of the room (itself included, as Triad and the
//! Socket.IO peer do), and the sender gets `ack:<id>` (the text up to its first space).
//!
//! It keeps the habits that matter for speed and that Triad keeps too: one reader and one
//! writer task per connection joined by a bounded queue, frames shared rather than copied,
//! writes fed and flushed once per batch, `TCP_NODELAY`, small buffers. A member whose
//! queue is full is dropped (it cannot keep up) rather than slowing the room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued per connection before it counts as too slow.
const QUEUE: usize = 4096;

type Member = (u64, mpsc::Sender<Utf8Bytes>);

#[derive(Default)]
struct Rooms {
    rooms: Mutex<HashMap<String, Arc<Mutex<Vec<Member>>>>>,
}

impl Rooms {
    fn room(&self, name: &str) -> Arc<Mutex<Vec<Member>>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(name.to_string()).or_default().clone()
    }
}

/// Reads the room from the upgrade request's query (`?room=<room>`); never refuses.
struct RoomOf<'a>(&'a mut String);

impl Callback for RoomOf<'_> {
    fn on_request(self, request: &Request, response: Response) -> Result<Response, ErrorResponse> {
        if let Some(query) = request.uri().query() {
            for pair in query.split('&') {
                if let Some(room) = pair.strip_prefix("room=") {
                    *self.0 = room.to_string();
                }
            }
        }
        Ok(response)
    }
}

/// The same buffer sizes Triad's gateway uses (`gateway::socket_config`): a 1 KiB read
/// buffer, and writes gathered up to 2 KiB.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(2 * 1024)
        .max_write_buffer_size(2 * 1024 * 1024)
        .max_frame_size(Some(128 * 1024))
        .max_message_size(Some(128 * 1024))
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener) {
    let rooms = Arc::new(Rooms::default());
    let mut next = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            continue;
        };
        next += 1;
        tokio::spawn(connection(stream, rooms.clone(), next));
    }
}

async fn connection(stream: TcpStream, rooms: Arc<Rooms>, id: u64) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut room_name = String::from("default");
    let callback = RoomOf(&mut room_name);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await
    else {
        return;
    };
    let room = rooms.room(&room_name);
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    room.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((id, tx.clone()));
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.feed(Message::Text(text)).await.is_err() {
                return;
            }
            while let Ok(text) = rx.try_recv() {
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            if matches!(message, Message::Close(_)) {
                break;
            }
            continue;
        };
        let ack = format!("ack:{}", text.split(' ').next().unwrap_or_default());
        {
            let mut members = room.lock().unwrap_or_else(|e| e.into_inner());
            members.retain(|(_, member)| member.try_send(text.clone()).is_ok());
        }
        if tx.try_send(Utf8Bytes::from(ack)).is_err() {
            break;
        }
    }
    room.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(member, _)| *member != id);
    // The writer ends by itself once the last sender of its queue is gone.
    drop(tx);
    drop(writer);
}
