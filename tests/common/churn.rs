//! Metadata churn against the built broker, with a crash in the middle: several HTTP clients
//! change topics and channels, the broker is killed (and, for the power-loss tests, the
//! filesystem loses what was not fsynced), restarted on the same data path, and what it serves
//! after the restart must agree with every change it answered 200.
//!
//! Each client owns its own topics (client `i` only touches `c{i}_t{j}`) and sends one request
//! at a time, so the operations on every name are totally ordered and the model is exact:
//! the answered operations say precisely what must hold, and only the one request a client had
//! in flight when the broker died (its last one) may or may not have taken effect.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use super::BrokerProcess;

/// Concurrent HTTP clients per cycle.
const CLIENTS: usize = 4;
/// Topics each client owns: 4 x 2 = 8 topics in all.
const TOPICS_PER_CLIENT: usize = 2;
/// Channel names used on every topic.
const CHANNELS: [&str; 3] = ["ch0", "ch1", "ch2"];
/// How long after the clients start the broker is killed, in milliseconds.
const KILL_AFTER_MS: std::ops::RangeInclusive<u64> = 50..=400;

/// One topic as it exists: its paused flag and its channels' paused flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicState {
    paused: bool,
    channels: BTreeMap<String, bool>,
}

/// Every existing topic by name.
pub type State = BTreeMap<String, TopicState>;

#[derive(Debug, Clone, Copy)]
enum Op {
    CreateTopic,
    DeleteTopic,
    SetTopicPaused(bool),
    CreateChannel(usize),
    DeleteChannel(usize),
    SetChannelPaused(usize, bool),
}

/// One request a client sends.
#[derive(Debug, Clone)]
struct Action {
    topic: String,
    op: Op,
}

impl Action {
    fn random(rng: &mut impl Rng, topics: &[String]) -> Action {
        let topic = topics[rng.gen_range(0..topics.len())].clone();
        let channel = rng.gen_range(0..CHANNELS.len());
        let op = match rng.gen_range(0..100) {
            0..=17 => Op::CreateTopic,
            18..=23 => Op::DeleteTopic,
            24..=30 => Op::SetTopicPaused(true),
            31..=37 => Op::SetTopicPaused(false),
            38..=62 => Op::CreateChannel(channel),
            63..=72 => Op::DeleteChannel(channel),
            73..=86 => Op::SetChannelPaused(channel, true),
            _ => Op::SetChannelPaused(channel, false),
        };
        Action { topic, op }
    }

    /// The path and query of the request.
    fn path(&self) -> String {
        let t = &self.topic;
        match self.op {
            Op::CreateTopic => format!("/topic/create?topic={t}"),
            Op::DeleteTopic => format!("/topic/delete?topic={t}"),
            Op::SetTopicPaused(true) => format!("/topic/pause?topic={t}"),
            Op::SetTopicPaused(false) => format!("/topic/unpause?topic={t}"),
            Op::CreateChannel(c) => format!("/channel/create?topic={t}&channel={}", CHANNELS[c]),
            Op::DeleteChannel(c) => format!("/channel/delete?topic={t}&channel={}", CHANNELS[c]),
            Op::SetChannelPaused(c, true) => {
                format!("/channel/pause?topic={t}&channel={}", CHANNELS[c])
            }
            Op::SetChannelPaused(c, false) => {
                format!("/channel/unpause?topic={t}&channel={}", CHANNELS[c])
            }
        }
    }

    /// What Go nsqd's API does with this request when the topic is `current` (`None`: absent):
    /// `Ok(next state of the topic)` when it answers 200, `Err(code)` when it answers 404.
    fn outcome(&self, current: Option<&TopicState>) -> Result<Option<TopicState>, &'static str> {
        let Some(topic) = current else {
            return match self.op {
                Op::CreateTopic => Ok(Some(TopicState::default())),
                _ => Err("TOPIC_NOT_FOUND"),
            };
        };
        let mut next = topic.clone();
        match self.op {
            Op::CreateTopic => {}
            Op::DeleteTopic => return Ok(None),
            Op::SetTopicPaused(paused) => next.paused = paused,
            Op::CreateChannel(c) => {
                next.channels
                    .entry(CHANNELS[c].to_string())
                    .or_insert(false);
            }
            Op::DeleteChannel(c) => {
                if next.channels.remove(CHANNELS[c]).is_none() {
                    return Err("CHANNEL_NOT_FOUND");
                }
            }
            Op::SetChannelPaused(c, paused) => match next.channels.get_mut(CHANNELS[c]) {
                Some(flag) => *flag = paused,
                None => return Err("CHANNEL_NOT_FOUND"),
            },
        }
        Ok(Some(next))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "POST {}", self.path())
    }
}

/// How a request ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// The broker answered with this status and body.
    Answered(u16, String),
    /// No answer: the connection failed (the broker was killed before or while serving it).
    Unanswered(String),
}

/// One request and how it ended, in the order the client sent them.
#[derive(Debug, Clone)]
struct Record {
    action: Action,
    outcome: Outcome,
}

/// Client `client`'s topics.
fn topics_of(client: usize) -> Vec<String> {
    (0..TOPICS_PER_CLIENT)
        .map(|j| format!("c{client}_t{j}"))
        .collect()
}

/// Sends random changes to its own topics, one at a time, until a request goes unanswered
/// (the broker was killed). That last request is the only one whose effect is unknown.
fn run_client(base: &str, client: usize) -> Vec<Record> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let topics = topics_of(client);
    let mut rng = rand::thread_rng();
    let mut log = Vec::new();
    loop {
        let action = Action::random(&mut rng, &topics);
        let answer = http
            .post(format!("{base}{}", action.path()))
            .send()
            .map(|response| {
                let status = response.status().as_u16();
                // The status is the answer; a body cut off by the kill does not undo it.
                (status, response.text().unwrap_or_default())
            });
        match answer {
            Ok((status, body)) => log.push(Record {
                action,
                outcome: Outcome::Answered(status, body),
            }),
            Err(e) => {
                log.push(Record {
                    action,
                    outcome: Outcome::Unanswered(e.to_string()),
                });
                return log;
            }
        }
    }
}

/// `GET /stats?format=json` as a [`State`].
pub fn served_state(base: &str) -> State {
    let response = reqwest::blocking::get(format!("{base}/stats?format=json")).expect("GET /stats");
    assert_eq!(response.status().as_u16(), 200, "GET /stats");
    let stats: Value =
        serde_json::from_str(&response.text().expect("stats body")).expect("stats JSON");
    let mut state = State::new();
    for topic in stats["topics"].as_array().expect("stats.topics is a list") {
        let name = topic["topic_name"]
            .as_str()
            .expect("topic_name")
            .to_string();
        let mut channels = BTreeMap::new();
        for channel in topic["channels"].as_array().expect("topic channels list") {
            let channel_name = channel["channel_name"].as_str().expect("channel_name");
            let paused = channel["paused"].as_bool().expect("channel paused");
            assert!(
                channels.insert(channel_name.to_string(), paused).is_none(),
                "channel {name}/{channel_name} listed twice in /stats"
            );
        }
        let paused = topic["paused"].as_bool().expect("topic paused");
        assert!(
            state
                .insert(name.clone(), TopicState { paused, channels })
                .is_none(),
            "topic {name} listed twice in /stats"
        );
    }
    state
}

/// `<data_path>/nsqd.dat`, parsed as Go nsqd's metadata file, as a [`State`].
pub fn nsqd_dat_state(data_path: &Path) -> State {
    let path = data_path.join("nsqd.dat");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} does not parse: {e}: {}",
            path.display(),
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(file["version"], "1.3.0", "nsqd.dat version");
    let mut state = State::new();
    let topics = match &file["topics"] {
        Value::Null => Vec::new(),
        Value::Array(topics) => topics.clone(),
        other => panic!("nsqd.dat topics is neither null nor a list: {other}"),
    };
    for topic in topics {
        let name = topic["name"].as_str().expect("topic name").to_string();
        let mut channels = BTreeMap::new();
        match &topic["channels"] {
            Value::Null => {}
            Value::Array(list) => {
                for channel in list {
                    let channel_name = channel["name"].as_str().expect("channel name");
                    let paused = channel["paused"].as_bool().expect("channel paused");
                    channels.insert(channel_name.to_string(), paused);
                }
            }
            other => panic!("nsqd.dat channels of {name} is neither null nor a list: {other}"),
        }
        let paused = topic["paused"].as_bool().expect("topic paused");
        state.insert(name, TopicState { paused, channels });
    }
    state
}

/// What one cycle's clients did, counted.
#[derive(Debug, Default)]
pub struct Counts {
    pub ok: usize,
    /// Requests answered 200 that changed something (not a create of what existed, say).
    pub changed: usize,
    pub not_found: usize,
    pub unanswered: usize,
    /// Unanswered requests whose change is visible after the restart.
    pub unanswered_applied: usize,
}

/// Checks the state served after the restart against the clients' logs, starting from the
/// state served before the cycle. Panics with the history of the name at fault.
fn verify(cycle: usize, start: &State, logs: &[Vec<Record>], after_restart: &State) -> Counts {
    let mut counts = Counts::default();
    let mut model = start.clone();
    // Topic -> (state before, state after, description of) its unanswered request.
    let mut uncertain: BTreeMap<String, (Option<TopicState>, Option<TopicState>, String)> =
        BTreeMap::new();
    let history = |topic: &str| -> String {
        logs.iter()
            .flatten()
            .filter(|r| r.action.topic == topic)
            .map(|r| format!("\n    {} -> {:?}", r.action, r.outcome))
            .collect()
    };
    for (client, log) in logs.iter().enumerate() {
        for (index, record) in log.iter().enumerate() {
            let topic = &record.action.topic;
            assert!(
                topics_of(client).contains(topic),
                "client {client} touched {topic}, which it does not own"
            );
            let before = model.get(topic).cloned();
            let expected = record.action.outcome(before.as_ref());
            match (&record.outcome, expected) {
                (Outcome::Answered(200, _), Ok(next)) => {
                    counts.ok += 1;
                    counts.changed += usize::from(next != before);
                    match next {
                        Some(state) => model.insert(topic.clone(), state),
                        None => model.remove(topic),
                    };
                }
                (Outcome::Answered(404, body), Err(code)) if body.contains(code) => {
                    counts.not_found += 1;
                }
                (Outcome::Answered(status, body), expected) => panic!(
                    "cycle {cycle}: client {client} request {index} {} was answered {status} {body:?}, \
                     but with {topic} in state {before:?} it must be {expected:?} (Ok: 200; Err: 404 with that code); \
                     history of {topic} this cycle:{}",
                    record.action,
                    history(topic)
                ),
                (Outcome::Unanswered(reason), expected) => {
                    counts.unanswered += 1;
                    assert_eq!(
                        index,
                        log.len() - 1,
                        "a client stops at its first unanswered request"
                    );
                    let after = expected.unwrap_or_else(|_| before.clone());
                    let request = format!("{} ({reason})", record.action);
                    uncertain.insert(topic.clone(), (before, after, request));
                }
            }
        }
    }
    for name in after_restart.keys() {
        assert!(
            (0..CLIENTS).any(|c| topics_of(c).contains(name)),
            "cycle {cycle}: topic {name} appeared after the restart, but no client ever created it"
        );
    }
    for client in 0..CLIENTS {
        for topic in topics_of(client) {
            let actual = after_restart.get(&topic);
            let certain = model.get(&topic);
            match uncertain.get(&topic) {
                Some((before, after, request)) => {
                    assert!(
                        actual == before.as_ref() || actual == after.as_ref(),
                        "cycle {cycle}: after the crash and restart {topic} is {actual:?}; the answered \
                         changes allow only {before:?} (the unanswered last request {request} not \
                         applied) or {after:?} (applied); history of {topic} this cycle:{}",
                        history(&topic)
                    );
                    if actual != before.as_ref() {
                        counts.unanswered_applied += 1;
                    }
                }
                None => assert_eq!(
                    actual,
                    certain,
                    "cycle {cycle}: after the crash and restart {topic} is {actual:?}, but the changes \
                     answered 200 leave it {certain:?} (None: deleted or never created); history of \
                     {topic} this cycle:{}",
                    history(&topic)
                ),
            }
        }
    }
    counts
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.ok += other.ok;
        self.changed += other.changed;
        self.not_found += other.not_found;
        self.unanswered += other.unanswered;
        self.unanswered_applied += other.unanswered_applied;
    }
}

/// Runs `cycles` churn cycles against the built broker on `data_path`, started with `flags`.
/// In each, the clients churn until a random moment, then `crash` gets the broker and the
/// cycle number: it must leave the broker dead and reaped (and may cut power), and returns a
/// note for the cycle's line. The broker is restarted; what it serves must agree with every
/// answer, and the `nsqd.dat` it rewrote at start-up with what it serves. A clean stop and a
/// clean restart end the run. Panics with the history of the name at fault; returns the
/// totals.
pub fn run_cycles(
    label: &str,
    data_path: &Path,
    flags: &[&str],
    cycles: usize,
    mut crash: impl FnMut(usize, BrokerProcess) -> String,
) -> Counts {
    let started = Instant::now();
    let mut rng = rand::thread_rng();

    let mut broker = BrokerProcess::spawn(data_path, flags);
    let mut state = served_state(&broker.base());
    assert!(
        state.is_empty(),
        "a fresh data path has no topics: {state:?}"
    );
    let mut totals = Counts::default();

    for cycle in 0..cycles {
        let base = broker.base();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let base = base.clone();
                thread::spawn(move || run_client(&base, client))
            })
            .collect();
        let crash_after = Duration::from_millis(rng.gen_range(KILL_AFTER_MS));
        // Not synchronisation: this picks a random moment for the crash, with the clients
        // mid-flight.
        thread::sleep(crash_after);
        let note = crash(cycle, broker);
        let logs: Vec<Vec<Record>> = clients
            .into_iter()
            .map(|c| c.join().expect("client thread"))
            .collect();

        broker = BrokerProcess::spawn(data_path, flags);
        let after_restart = served_state(&broker.base());
        let counts = verify(cycle, &state, &logs, &after_restart);
        // Start-up rewrote nsqd.dat from the store before serving; nothing changed since.
        assert_eq!(
            nsqd_dat_state(data_path),
            after_restart,
            "{label} cycle {cycle}: nsqd.dat after the restart differs from what the broker serves"
        );
        let channels: usize = after_restart.values().map(|t| t.channels.len()).sum();
        println!(
            "{label} cycle {cycle:3}: crashed after {:3} ms; answered 200: {:3} ({:3} changes), \
             answered 404: {:3}, unanswered: {} ({} applied); now {} topics, {} channels{note}",
            crash_after.as_millis(),
            counts.ok,
            counts.changed,
            counts.not_found,
            counts.unanswered,
            counts.unanswered_applied,
            after_restart.len(),
            channels
        );
        totals.add(&counts);
        state = after_restart;
    }

    // A clean stop and a clean restart keep the same state, and leave an nsqd.dat that parses.
    assert!(broker.terminate(), "SIGTERM: the broker exits 0");
    assert_eq!(nsqd_dat_state(data_path), state, "nsqd.dat after SIGTERM");
    let broker = BrokerProcess::spawn(data_path, flags);
    assert_eq!(
        served_state(&broker.base()),
        state,
        "state after a clean restart"
    );
    assert!(broker.terminate(), "SIGTERM: the broker exits 0");
    assert_eq!(
        nsqd_dat_state(data_path),
        state,
        "nsqd.dat after a clean restart"
    );

    println!(
        "{label}: {cycles} cycles in {:.1} s: answered 200: {} ({} changes), answered 404: {}, \
         unanswered: {} ({} applied)",
        started.elapsed().as_secs_f64(),
        totals.ok,
        totals.changed,
        totals.not_found,
        totals.unanswered,
        totals.unanswered_applied
    );
    assert!(
        cycles == 0 || totals.changed > cycles,
        "{label}: the clients got too few changes answered ({}) for the test to mean anything",
        totals.changed
    );
    totals
}
