//! The tunnel building blocks against a real OpenSSH server on a loopback port (Debian's
//! openssh-server, started by the test with its own host key, authorized_keys and config):
//! the forward carries bytes, ssh's failures are told apart, and the supervisor brings a
//! killed ssh back.

use clawgate_client::tunnel::{
    SshProcess, SupervisorEvent, TunnelErrorKind, TunnelSpec, find_ssh, pick_local_port, supervise,
};
use clawgate_testkit::Sshd;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const READY: Duration = Duration::from_secs(15);

fn spec(sshd: &Sshd, remote_port: u16) -> TunnelSpec {
    let mut spec = TunnelSpec::new(sshd.target());
    spec.ssh_port = Some(sshd.port());
    spec.identity = Some(sshd.client_key());
    spec.known_hosts = Some(sshd.known_hosts());
    spec.remote_port = remote_port;
    spec
}

/// A loopback echo server: the far end of the tunnel.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

async fn echo_through(port: u16, text: &str) -> String {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    s.write_all(text.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    String::from_utf8(buf).unwrap()
}

#[tokio::test]
async fn the_forward_carries_bytes_to_the_remote_port() {
    let sshd = Sshd::start().await.unwrap();
    let far = echo_server().await;
    let spec = spec(&sshd, far);
    let local = pick_local_port(None).unwrap();
    let mut p = SshProcess::spawn(&find_ssh().unwrap(), &spec, local).unwrap();
    p.wait_ready(&spec, READY)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", sshd.transcript()));
    assert_eq!(
        echo_through(local, "hello through ssh").await,
        "hello through ssh"
    );
    p.stop().await;
}

#[tokio::test]
async fn failures_are_told_apart_by_what_ssh_says() {
    let sshd = Sshd::start().await.unwrap();
    let ssh = find_ssh().unwrap();
    let far = echo_server().await;

    let attempt = |spec: TunnelSpec, local: u16| {
        let ssh = ssh.clone();
        async move {
            match SshProcess::spawn(&ssh, &spec, local) {
                Ok(mut p) => p.wait_ready(&spec, READY).await.unwrap_err(),
                Err(e) => e,
            }
        }
    };

    // Unknown host key.
    let mut s = spec(&sshd, far);
    s.known_hosts = Some(sshd.empty_known_hosts());
    let e = attempt(s, pick_local_port(None).unwrap()).await;
    assert_eq!(e.kind, TunnelErrorKind::HostKeyUnknown, "{e:?}");
    assert!(e.stderr.contains("Host key verification failed"), "{e:?}");

    // A key the server does not accept.
    let mut s = spec(&sshd, far);
    s.identity = Some(sshd.other_key());
    let e = attempt(s, pick_local_port(None).unwrap()).await;
    assert_eq!(e.kind, TunnelErrorKind::AuthFailed, "{e:?}");
    assert!(e.stderr.contains("Permission denied"), "{e:?}");

    // The host key changed.
    let mut s = spec(&sshd, far);
    s.known_hosts = Some(sshd.wrong_known_hosts());
    let e = attempt(s, pick_local_port(None).unwrap()).await;
    assert_eq!(e.kind, TunnelErrorKind::HostKeyChanged, "{e:?}");

    // The local port is taken.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let e = attempt(spec(&sshd, far), busy_port).await;
    assert_eq!(e.kind, TunnelErrorKind::LocalPortBusy, "{e:?}");
    assert!(e.message.contains(&busy_port.to_string()), "{e:?}");
    drop(busy);

    // Nothing listens on the SSH port.
    let closed = pick_local_port(None).unwrap();
    let mut s = spec(&sshd, far);
    s.ssh_port = Some(closed);
    let e = attempt(s, pick_local_port(None).unwrap()).await;
    assert_eq!(e.kind, TunnelErrorKind::SshUnreachable, "{e:?}");
}

/// The ssh pid of the next `Up` event.
async fn next_up(rx: &mut tokio::sync::mpsc::UnboundedReceiver<SupervisorEvent>) -> u32 {
    let fut = async {
        loop {
            match rx.recv().await {
                Some(SupervisorEvent::Up { ssh_pid }) => return ssh_pid,
                Some(_) => {}
                None => panic!("supervisor ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the tunnel comes up in time")
}

#[tokio::test]
async fn a_killed_ssh_is_started_again_on_the_same_port() {
    let sshd = Sshd::start().await.unwrap();
    let far = echo_server().await;
    let spec = spec(&sshd, far);
    let local = pick_local_port(None).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn({
        let spec = spec.clone();
        async move {
            supervise(
                &spec,
                local,
                READY,
                |e| {
                    let _ = tx.send(e);
                },
                async {
                    let _ = stop_rx.await;
                },
            )
            .await
        }
    });
    let first = next_up(&mut rx).await;
    assert_eq!(echo_through(local, "one").await, "one");

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let second = next_up(&mut rx).await;
    assert_ne!(first, second);
    assert_eq!(echo_through(local, "two").await, "two");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(
        !clawgate_client::tunnel::process_alive(second) || {
            // A zombie until reaped is fine; it must not accept connections any more.
            TcpStream::connect(("127.0.0.1", local)).await.is_err()
        }
    );
}
