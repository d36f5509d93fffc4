//! Graceful shutdown of the real binary on SIGTERM: connected producers and consumers (one
//! holding a message in flight) are closed, the process exits 0 promptly, and the metadata
//! made through the protocol is on disk afterwards.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::BrokerProcess;

fn frame(stream: &mut TcpStream) -> std::io::Result<(i32, Vec<u8>)> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header)?;
    let size = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let mut data = vec![0; size as usize - 4];
    stream.read_exact(&mut data)?;
    Ok((kind, data))
}

fn connect(process: &BrokerProcess) -> TcpStream {
    let holder = rnsq::data_lock::read_holder(&process.data_path).expect("holder recorded");
    let stream = TcpStream::connect(holder.tcp_address.expect("TCP address recorded")).unwrap();
    stream.set_read_timeout(Some(common::DEADLINE)).unwrap();
    stream
}

#[test]
fn sigterm_closes_clients_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let process = BrokerProcess::spawn(dir.path(), &[]);

    let mut consumer = connect(&process);
    consumer
        .write_all(b"  V2SUB orders billing\nRDY 1\n")
        .unwrap();
    assert_eq!(frame(&mut consumer).unwrap(), (0, b"OK".to_vec()));
    let mut producer = connect(&process);
    producer.write_all(b"  V2").unwrap();
    for body in [&b"first"[..], b"second"] {
        producer.write_all(b"PUB orders\n").unwrap();
        producer
            .write_all(&(body.len() as i32).to_be_bytes())
            .unwrap();
        producer.write_all(body).unwrap();
        assert_eq!(frame(&mut producer).unwrap(), (0, b"OK".to_vec()));
    }
    let (kind, data) = frame(&mut consumer).unwrap();
    assert_eq!((kind, &data[26..]), (2, &b"first"[..]));

    let started = Instant::now();
    assert!(process.terminate(), "rnsq did not exit 0 on SIGTERM");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    // Both connections were closed by the broker: a read ends (EOF or reset), it does not hang.
    for stream in [&mut consumer, &mut producer] {
        let mut rest = Vec::new();
        let ended = stream.read_to_end(&mut rest);
        assert!(
            ended.is_ok()
                || ended.is_err_and(|e| e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut)
        );
    }
    let dat = std::fs::read_to_string(dir.path().join("nsqd.dat")).unwrap();
    assert_eq!(
        dat,
        r#"{"topics":[{"name":"orders","paused":false,"channels":[{"name":"billing","paused":false}]}],"version":"1.3.0"}"#
    );
}
