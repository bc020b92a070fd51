//! Windowed stream-stream join: ad impressions and the clicks on them, within 5 minutes.
//!
//! Both streams are keyed by impression id. A click within 5 minutes (after, or slightly before,
//! allowing for clock skew) of its impression is attributed; an impression left unclicked is
//! reported as such once its window has closed (left join), never earlier.

use serde::{Deserialize, Serialize};
use streams_core::serdes::{SerdeRef, Serdes};
use streams_core::{Result, Topology};
use streams_dsl::{Consumed, JoinWindows, Produced, StreamJoined, StreamsBuilder};

use crate::orders::json;

/// How far apart an impression and its click may be.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// How late records may arrive and still join.
pub const GRACE_MS: i64 = 30 * 1000;

/// An ad was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impression {
    /// Which ad.
    pub ad_id: String,
    /// To whom.
    pub user: String,
}

/// An ad was clicked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    /// Where on the page.
    pub position: String,
}

/// The outcome of one impression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribution {
    /// Which ad.
    pub ad_id: String,
    /// Who saw it.
    pub user: String,
    /// The click, if one came within the window.
    pub click: Option<Click>,
}

/// `impressions` and `clicks` (impression id -> JSON) -> `output` (impression id -> [`Attribution`]).
pub fn attribution_topology(impressions: &str, clicks: &str, output: &str) -> Result<Topology> {
    let b = StreamsBuilder::new();
    let s: SerdeRef<String> = Serdes::string();
    let impressions = b.stream_with(
        &[impressions],
        Consumed::with(s.clone(), json::<Impression>()),
    );
    let clicks = b.stream_with(&[clicks], Consumed::with(s.clone(), json::<Click>()));
    impressions
        .left_join(
            &clicks,
            |i: &Impression, c: Option<&Click>| Attribution {
                ad_id: i.ad_id.clone(),
                user: i.user.clone(),
                click: c.cloned(),
            },
            JoinWindows::of_time_difference_and_grace(WINDOW_MS, GRACE_MS),
            StreamJoined::with(s.clone(), json::<Impression>(), json::<Click>())
                .with_name("impression-clicks"),
        )
        .to_with(output, Produced::with(s, json::<Attribution>()));
    b.build()
}
