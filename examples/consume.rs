//! Consumes messages with a real NSQ client (tokio-nsq) and prints them.
//!
//! `cargo run --example consume -- <topic> <channel> [nsqd-tcp-address]`
//! (default address 127.0.0.1:4150). Stops after a minute without messages.

use std::time::Duration;

use tokio_nsq::{NSQChannel, NSQConsumerConfig, NSQConsumerConfigSources, NSQTopic};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(topic), Some(channel)) = (args.next(), args.next()) else {
        eprintln!("usage: consume <topic> <channel> [nsqd-tcp-address]");
        std::process::exit(2);
    };
    let address = args.next().unwrap_or_else(|| "127.0.0.1:4150".into());
    let (Some(topic), Some(channel)) = (NSQTopic::new(topic), NSQChannel::new(channel)) else {
        eprintln!("invalid topic or channel name");
        std::process::exit(2);
    };
    let mut consumer = NSQConsumerConfig::new(topic, channel)
        .set_max_in_flight(100)
        .set_sources(NSQConsumerConfigSources::Daemons(vec![address]))
        .build();
    let idle = Duration::from_secs(60);
    while let Ok(Some(message)) = tokio::time::timeout(idle, consumer.consume_filtered()).await {
        println!(
            "{} (attempt {})",
            String::from_utf8_lossy(&message.body),
            message.attempt
        );
        message.finish().await;
    }
}
