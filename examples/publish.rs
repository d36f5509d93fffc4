//! Publishes messages with a real NSQ client (tokio-nsq).
//!
//! `cargo run --example publish -- <topic> <message>... [--nsqd 127.0.0.1:4150]`

use tokio_nsq::{NSQEvent, NSQProducerConfig, NSQTopic};

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut address = "127.0.0.1:4150".to_string();
    if let Some(at) = args.iter().position(|a| a == "--nsqd") {
        if at + 1 < args.len() {
            address = args.remove(at + 1);
        }
        args.remove(at);
    }
    if args.len() < 2 {
        eprintln!("usage: publish <topic> <message>... [--nsqd ADDRESS]");
        std::process::exit(2);
    }
    let Some(topic) = NSQTopic::new(args.remove(0)) else {
        eprintln!("invalid topic name");
        std::process::exit(2);
    };
    let mut producer = NSQProducerConfig::new(address).build();
    if !matches!(producer.consume().await, Some(NSQEvent::Healthy())) {
        eprintln!("cannot connect to nsqd");
        std::process::exit(1);
    }
    for message in &args {
        if let Err(e) = producer.publish(&topic, message.clone().into_bytes()).await {
            eprintln!("publish failed: {e}");
            std::process::exit(1);
        }
        match producer.consume().await {
            Some(NSQEvent::Ok()) => println!("published {message:?}"),
            other => {
                eprintln!("publish not acknowledged: {other:?}");
                std::process::exit(1);
            }
        }
    }
}
