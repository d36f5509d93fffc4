//! What the broker tells its subscribers (the lookup loop, the `nsqd.dat` keeper) after a
//! change has been persisted and applied.

/// One change to the set of topics and channels, or to a paused flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeEvent {
    TopicCreated {
        topic: String,
    },
    TopicDeleted {
        topic: String,
    },
    TopicPaused {
        topic: String,
        paused: bool,
    },
    ChannelCreated {
        topic: String,
        channel: String,
    },
    ChannelDeleted {
        topic: String,
        channel: String,
    },
    ChannelPaused {
        topic: String,
        channel: String,
        paused: bool,
    },
}

impl ChangeEvent {
    /// The topic the event concerns.
    pub fn topic(&self) -> &str {
        match self {
            ChangeEvent::TopicCreated { topic }
            | ChangeEvent::TopicDeleted { topic }
            | ChangeEvent::TopicPaused { topic, .. }
            | ChangeEvent::ChannelCreated { topic, .. }
            | ChangeEvent::ChannelDeleted { topic, .. }
            | ChangeEvent::ChannelPaused { topic, .. } => topic,
        }
    }
}
