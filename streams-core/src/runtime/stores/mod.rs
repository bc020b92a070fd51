//! A task's stores on disk: opening a task directory for an active task or a standby copy, the
//! checkpoint of changelog offsets its stores reflect (`task_dir`), and the metering layer
//! around key-value stores (`metered_store`). Calls `env` and `metrics`.

pub(crate) mod metered_store;
pub(crate) mod task_dir;
