//! `grip-origin`: the GRIP origin Pushpin proxies to in the side-by-side benchmark
//! (`bench/run.sh`). Usage: `grip-origin [ADDR]` (default `127.0.0.1:18299`).

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18299".to_owned());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("grip-origin: starting the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("grip-origin: listening on {addr}");
        loadgen::grip_origin::serve(listener).await
    });
    if let Err(e) = served {
        eprintln!("grip-origin: {addr}: {e}");
    }
    std::process::ExitCode::from(2)
}
