//! What both daemons' options are made of: the side-neutral pieces nsqd's `config` and
//! nsqlookupd's `config` share, so that neither daemon imports the other's options.

pub mod duration;
