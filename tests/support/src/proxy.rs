//! A forwarding HTTP proxy on a free loopback port, as corporate networks
//! have: CONNECT tunnels (for https targets) and absolute-form requests (for
//! http ones) are forwarded to their target and recorded, so a test can tell
//! whether a client went through the proxy. Stops accepting when dropped.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};

pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind the proxy")?;
        let url = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let recorded = Arc::clone(&recorded);
                std::thread::spawn(move || {
                    let _ = forward(client, &recorded);
                });
            }
        });
        Ok(Self { url, seen })
    }

    /// Each request line the proxy received: `CONNECT host:port` or
    /// `GET http://host:port/path`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn forward(client: TcpStream, seen: &Mutex<Vec<String>>) -> Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        headers.push(line);
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_owned(),
        parts.next().unwrap_or_default().to_owned(),
    );
    if let Ok(mut list) = seen.lock() {
        list.push(format!("{method} {target}"));
    }
    let mut client = client;
    let upstream = if method == "CONNECT" {
        let upstream = TcpStream::connect(&target)?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        upstream
    } else {
        let rest = target
            .strip_prefix("http://")
            .context("not an absolute-form request")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut upstream = TcpStream::connect(authority)?;
        let path = if path.is_empty() { "/" } else { path };
        write!(upstream, "{method} {path} HTTP/1.1\r\n")?;
        for header in &headers {
            if !header.to_ascii_lowercase().starts_with("proxy-") {
                upstream.write_all(header.as_bytes())?;
            }
        }
        upstream.write_all(b"\r\n")?;
        upstream
    };
    // What the client sent after the head, then both directions.
    let buffered = reader.buffer().to_vec();
    let mut to_upstream = upstream.try_clone()?;
    to_upstream.write_all(&buffered)?;
    let mut from_client = reader.into_inner();
    let pump = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    let mut from_upstream = upstream;
    let mut buffer = [0u8; 16384];
    loop {
        let n = from_upstream.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        client.write_all(&buffer[..n])?;
    }
    let _ = client.shutdown(Shutdown::Write);
    let _ = pump.join();
    Ok(())
}
