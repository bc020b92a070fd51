//! Bringing task stores up to date from their changelogs: active tasks before they process
//! (`ChangelogReader`, one restore consumer per thread), and
//! standby copies all the time (`standby`), placed by reading the group's assignment
//! (`group_view`). Calls `stores`, `env`, `internal_topics`, `clients` and `state`; never `tasks`.

pub(crate) mod changelog_reader;
pub(crate) mod group_view;
pub(crate) mod standby;
