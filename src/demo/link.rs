//! A cuttable TCP link on loopback between one store and the broker: the demo's network
//! partition. Cutting closes every open connection and refuses new ones until restored, which
//! is what a store sees when its uplink fails (the broker sees the will fire).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A running link; dropping it stops accepting (open connections end with the runtime).
pub struct Link {
    pub addr: SocketAddr,
    open: watch::Sender<bool>,
    stop: CancellationToken,
}

impl Link {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (open, watch) = watch::channel(true);
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, target, watch, stop.clone()));
        Ok(Self { addr, open, stop })
    }

    /// Partition: closes the open connections and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    open: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        if !*open.borrow() {
            continue; // dropped: the store's connect attempt fails like on a dead uplink
        }
        tokio::spawn(forward(client, target, open.clone()));
    }
}

/// Pipes one connection both ways until either side closes or the link is cut.
async fn forward(mut client: TcpStream, target: SocketAddr, mut open: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = open.wait_for(|open| !*open) => {}
    }
}
