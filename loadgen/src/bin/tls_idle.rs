//! Memory of idle streams over TLS, for the router and nginx + nchan alike: what one idle
//! HTTP/1.1 stream on its own TLS connection costs the server, and what one more stream on an
//! HTTP/2 connection that is already open costs it.
//!
//! ```text
//! tls-idle --url https://localhost:8443 --path '/api/v1/user/nft-events' --token-secret S \
//!          --ca cert.pem --pid 1234 --h1 2000 --h2-connections 20 --h2-streams 100
//! ```
//!
//! `--path` may hold `{user}` (nchan's channel in the URL); with `--token-secret` each stream
//! carries a user token. Server memory is the resident set of `--pid` (all of them summed),
//! read once the streams have been open for `--settle` seconds. The figures go to stdout as
//! one JSON object.

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use loadgen::probe::total_rss_kib;
use loadgen::token::TokenMinter;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
struct Args {
    /// `https://host:port` of the server.
    #[arg(long)]
    url: String,
    /// The stream's path; `{user}` is replaced by each stream's user.
    #[arg(long)]
    path: String,
    /// Signs a user token per stream (the router); none: no Authorization (nchan).
    #[arg(long)]
    token_secret: Option<String>,
    /// The PEM certificate to trust (a self-signed development pair).
    #[arg(long)]
    ca: std::path::PathBuf,
    /// The server's processes, whose resident memory is summed.
    #[arg(long, value_delimiter = ',', required = true)]
    pid: Vec<u32>,
    /// Idle HTTP/1.1 streams, each on its own TLS connection.
    #[arg(long, default_value_t = 2000)]
    h1: usize,
    /// HTTP/2 connections for the per-stream figure.
    #[arg(long, default_value_t = 20)]
    h2_connections: usize,
    /// Streams per HTTP/2 connection (the first one is the connection's own).
    #[arg(long, default_value_t = 100)]
    h2_streams: usize,
    /// Users the streams are spread over, round robin.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Seconds to wait after opening, before reading memory.
    #[arg(long, default_value_t = 3)]
    settle: u64,
}

struct Target {
    host: String,
    port: u16,
    connector: TlsConnector,
    server_name: ServerName<'static>,
    path: String,
    tokens: Option<Arc<TokenMinter>>,
}

impl Target {
    fn path_for(&self, user: &str) -> String {
        self.path.replace("{user}", user)
    }

    fn authorization(&self, user: &str) -> anyhow::Result<Option<String>> {
        self.tokens
            .as_ref()
            .map(|t| t.mint(user, "user").map(|token| format!("Bearer {token}")))
            .transpose()
    }

    /// A TLS connection offering the one protocol of this target's connector.
    async fn connect(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .context("TCP connect")?;
        self.connector
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake")
    }
}

fn connector(ca: &std::path::Path, alpn: &[u8]) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).context("reading --ca")? {
        roots.add(cert.context("a PEM certificate")?)?;
    }
    #[allow(deprecated)] // the ring provider, as the router's own TLS uses
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// One idle HTTP/1.1 stream on its own TLS connection: the request, the response head, then
/// the connection is held and drained (heartbeats) until the process ends.
async fn open_h1(target: &Target, user: &str) -> anyhow::Result<()> {
    let mut tls = target.connect().await?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n",
        target.path_for(user),
        target.host
    );
    if let Some(auth) = target.authorization(user)? {
        request.push_str(&format!("Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 2048];
    let n = tls.read(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..n]);
    if !head.starts_with("HTTP/1.1 200") {
        bail!(
            "stream refused: {}",
            head.lines().next().unwrap_or_default()
        );
    }
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    Ok(())
}

/// An HTTP/2 connection and its client handle.
async fn open_h2(target: &Target) -> anyhow::Result<h2::client::SendRequest<bytes::Bytes>> {
    let tls = target.connect().await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        bail!("the server did not choose h2");
    }
    let (client, connection) = h2::client::handshake(tls).await.context("h2 handshake")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One more stream on an open HTTP/2 connection, held and drained in the background.
async fn open_h2_stream(
    target: &Target,
    client: &h2::client::SendRequest<bytes::Bytes>,
    user: &str,
) -> anyhow::Result<()> {
    let uri = format!(
        "https://{}:{}{}",
        target.host,
        target.port,
        target.path_for(user)
    );
    let mut request = http::Request::get(uri).header("accept", "text/event-stream");
    if let Some(auth) = target.authorization(user)? {
        request = request.header("authorization", auth);
    }
    let request = request.body(()).context("request")?;
    let mut ready = client.clone().ready().await.context("h2 stream slot")?;
    let (response, _) = ready.send_request(request, true)?;
    let response = response.await.context("response head")?;
    if response.status() != 200 {
        bail!("stream refused: {}", response.status());
    }
    let mut body = response.into_body();
    tokio::spawn(async move {
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
        }
    });
    Ok(())
}

async fn settle_then_rss(pids: &[u32], settle: u64) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(settle)).await;
    total_rss_kib(pids).ok_or_else(|| anyhow!("cannot read the memory of {pids:?}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = url::Url::parse(&args.url).context("--url")?;
    let host = url.host_str().context("--url has no host")?.to_owned();
    let port = url.port_or_known_default().context("--url has no port")?;
    let server_name = ServerName::try_from(host.clone()).context("a server name")?;
    let tokens = args
        .token_secret
        .as_deref()
        .map(|secret| Arc::new(TokenMinter::new(secret, 3600)));
    let user = |i: usize| format!("tls-u{}", i % args.users.max(1));
    let target = |alpn: &[u8]| -> anyhow::Result<Target> {
        Ok(Target {
            host: host.clone(),
            port,
            connector: connector(&args.ca, alpn)?,
            server_name: server_name.clone(),
            path: args.path.clone(),
            tokens: tokens.clone(),
        })
    };
    let (h1, h2) = (target(b"http/1.1")?, target(b"h2")?);

    let before = settle_then_rss(&args.pid, 1).await?;
    for i in 0..args.h1 {
        open_h1(&h1, &user(i))
            .await
            .with_context(|| format!("HTTP/1.1 stream {i}"))?;
    }
    let with_h1 = settle_then_rss(&args.pid, args.settle).await?;

    let mut clients = Vec::with_capacity(args.h2_connections);
    for i in 0..args.h2_connections {
        let client = open_h2(&h2)
            .await
            .with_context(|| format!("h2 connection {i}"))?;
        open_h2_stream(&h2, &client, &user(args.h1 + i)).await?;
        clients.push(client);
    }
    let with_h2_connections = settle_then_rss(&args.pid, args.settle).await?;
    let extra = args.h2_streams.saturating_sub(1);
    let mut n = args.h1 + args.h2_connections;
    for _ in 0..extra {
        for client in &clients {
            open_h2_stream(&h2, client, &user(n))
                .await
                .with_context(|| format!("h2 stream {n}"))?;
            n += 1;
        }
    }
    let with_h2_streams = settle_then_rss(&args.pid, args.settle).await?;

    let per = |grown: u64, count: usize| {
        if count == 0 {
            0.0
        } else {
            grown as f64 * 1024.0 / count as f64
        }
    };
    let extra_streams = extra * args.h2_connections;
    let report = serde_json::json!({
        "rss_kib": {
            "before": before,
            "with_h1_streams": with_h1,
            "with_h2_connections": with_h2_connections,
            "with_h2_streams": with_h2_streams,
        },
        "h1_streams": args.h1,
        "h2_connections": args.h2_connections,
        "h2_extra_streams": extra_streams,
        "bytes_per_idle_tls_h1_stream": per(with_h1.saturating_sub(before), args.h1),
        "bytes_per_h2_connection_with_one_stream":
            per(with_h2_connections.saturating_sub(with_h1), args.h2_connections),
        "bytes_per_extra_h2_stream":
            per(with_h2_streams.saturating_sub(with_h2_connections), extra_streams),
    });
    println!("{report}");
    Ok(())
}
