//! A local SMTP server for tests: accepts every message on 127.0.0.1 and keeps its
//! recipients and text. Speaks just enough SMTP for a client: greeting, EHLO/HELO,
//! MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, QUIT.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};

/// A message as received.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// The `RCPT TO` addresses.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, CRLF line ends, dots unstuffed.
    pub data: String,
}

impl Mail {
    /// The value of header `name` (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The decoded text body (7bit, 8bit, quoted-printable or base64).
    pub fn text(&self) -> String {
        let body = self
            .data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(body.split_whitespace().collect::<String>())
                .expect("base64 body"),
            "quoted-printable" => quoted_printable(body),
            _ => body.as_bytes().to_vec(),
        };
        String::from_utf8(bytes)
            .expect("UTF-8 body")
            .replace("\r\n", "\n")
    }
}

fn quoted_printable(body: &str) -> Vec<u8> {
    let joined = body.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).expect("quoted-printable escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The sink: a listener and what it received.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    received: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Starts listening on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Self {
            port,
            received: received.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, received.clone()));
            }
        });
        sink
    }

    /// The URL to configure as `smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.received.lock().unwrap().clone()
    }

    /// The messages received for `address`.
    pub fn mails_to(&self, address: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|mail| mail.recipients.iter().any(|r| r == address))
            .collect()
    }

    /// Waits up to 10 s until `count` messages for `address` arrived; returns them.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails_to(address);
            if mails.len() >= count {
                return mails;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{count} mail(s) for {address} expected, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn say(write: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    write.write_all(format!("{text}\r\n").as_bytes()).await
}

async fn serve(stream: TcpStream, received: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if say(&mut write, "220 sink.test ESMTP ready").await.is_err() {
        return;
    }
    let mut mail = Mail::default();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8",
            "HELO" => "250 sink.test",
            "MAIL" => {
                mail = Mail::default();
                "250 OK"
            }
            "RCPT" => {
                let address = command
                    .split_once(':')
                    .map(|(_, rest)| rest.trim())
                    .unwrap_or_default()
                    .trim_start_matches('<');
                let address = address.split('>').next().unwrap_or_default();
                mail.recipients.push(address.to_owned());
                "250 OK"
            }
            "DATA" => {
                if say(&mut write, "354 end with <CRLF>.<CRLF>").await.is_err() {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(unstuffed);
                }
                mail.data = data;
                received.lock().unwrap().push(std::mem::take(&mut mail));
                "250 OK queued"
            }
            "RSET" => {
                mail = Mail::default();
                "250 OK"
            }
            "QUIT" => {
                let _ = say(&mut write, "221 bye").await;
                return;
            }
            _ => "250 OK",
        };
        if say(&mut write, answer).await.is_err() {
            return;
        }
    }
}
