//! [`CoordinatorLink`]: the connection to a group's coordinator, found through the bootstrap
//! brokers (FindCoordinator) and found again when it moves or fails.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::{Request, StrBytes};

use super::connection::{Connection, Failure};
use super::security::Security;

/// Whether `failure` means the coordinator moved or is unreachable: find it again and retry.
pub(crate) fn coordinator_moved(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Transport(_)
            | Failure::Broker(
                ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress
            )
    )
}

/// A lazily opened connection to the coordinator of one group.
pub(crate) struct CoordinatorLink {
    bootstrap: Vec<String>,
    group_id: String,
    client_id: String,
    timeout: Duration,
    security: Security,
    connection: Option<Connection>,
}

impl CoordinatorLink {
    /// A link for `group_id`, found through `bootstrap_servers` (comma-separated `host:port`).
    pub fn new(
        bootstrap_servers: &str,
        group_id: &str,
        client_id: &str,
        timeout: Duration,
        security: Security,
    ) -> Self {
        CoordinatorLink {
            bootstrap: bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            group_id: group_id.to_string(),
            client_id: client_id.to_string(),
            timeout,
            security,
            connection: None,
        }
    }

    /// The group's coordinator (`host:port`), asked of each bootstrap broker in turn.
    fn find(&self) -> Result<String, Failure> {
        let mut last = Failure::Transport("no bootstrap servers".into());
        for address in &self.bootstrap {
            let answer = Connection::open(address, &self.client_id, self.timeout, &self.security)
                .and_then(|mut c| {
                    let version = c.version::<FindCoordinatorRequest>()?;
                    let key = StrBytes::from_string(self.group_id.clone());
                    // v4 (KIP-699) asks for a batch of keys; earlier versions for one.
                    let request = if version >= 4 {
                        FindCoordinatorRequest::default().with_coordinator_keys(vec![key])
                    } else {
                        FindCoordinatorRequest::default().with_key(key)
                    };
                    let answer = c.send(&request, self.timeout)?;
                    if version >= 4 {
                        let found = answer.coordinators.into_iter().next().ok_or_else(|| {
                            Failure::Protocol(format!("{address} found no coordinator"))
                        })?;
                        Failure::check(found.error_code)?;
                        Ok(format!("{}:{}", found.host, found.port))
                    } else {
                        Failure::check(answer.error_code)?;
                        Ok(format!("{}:{}", answer.host, answer.port))
                    }
                });
            match answer {
                Ok(coordinator) => return Ok(coordinator),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The open connection to the coordinator, found and opened first if needed.
    pub fn connection(&mut self) -> Result<&mut Connection, Failure> {
        if self.connection.is_none() {
            let coordinator = self.find()?;
            tracing::debug!(group = %self.group_id, %coordinator, "group coordinator found");
            self.connection = Some(Connection::open(
                &coordinator,
                &self.client_id,
                self.timeout,
                &self.security,
            )?);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| Failure::Transport("no coordinator connection".into()))
    }

    /// Forgets the coordinator: the next request finds it again.
    pub fn reset(&mut self) {
        self.connection = None;
    }

    /// Sends `request` to the coordinator; a failure that means it moved forgets it.
    pub fn send<R: Request>(
        &mut self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response, Failure> {
        let result = self.connection().and_then(|c| c.send(request, timeout));
        if let Err(e) = &result {
            if coordinator_moved(e) {
                self.reset();
            }
        }
        result
    }

    /// The version `R` goes to the coordinator at.
    pub fn version<R: Request>(&mut self) -> Result<i16, Failure> {
        self.connection()?.version::<R>()
    }

    /// The request timeout the link was made with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
