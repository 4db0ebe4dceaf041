//! [`baton_core::backend::Backend`] on etcd: every lock, term and claim
//! set is held under its own session (a lease kept alive), so releasing it
//! is revoking that lease, and losing it is the lease lapsing.

use std::sync::Arc;
use std::time::Duration;

use baton_core::backend::{Backend, BackendError, Holder, LeaderView};
use baton_core::lock::Wait;

use crate::client::Client;
use crate::queue::{self, Place};
use crate::session::Session;
use crate::{claims, election_prefix, fence, lock_prefix};

/// A cluster, and the TTL of the sessions opened on it.
#[derive(Debug)]
pub struct EtcdBackend {
    client: Arc<Client>,
    ttl: Duration,
    /// The claims' namespace.
    namespace: String,
}

impl EtcdBackend {
    pub fn new(client: Arc<Client>, ttl: Duration, namespace: &str) -> EtcdBackend {
        EtcdBackend {
            client,
            ttl,
            namespace: namespace.to_owned(),
        }
    }

    /// Joins the line under `prefix` and waits to be first.
    fn first_in_line(
        &self,
        prefix: &[u8],
        id: &str,
        wait: Wait,
    ) -> Result<Option<(Session, Place)>, BackendError> {
        let session =
            Session::open(self.client.clone(), self.ttl, true).map_err(BackendError::new)?;
        let place = queue::join(&session, prefix, id.as_bytes()).map_err(BackendError::new)?;
        if queue::wait_first(&session, prefix, &place, queue::deadline(wait))
            .map_err(BackendError::new)?
        {
            return Ok(Some((session, place)));
        }
        queue::leave(&session, &place).map_err(BackendError::new)?;
        session.close().map_err(BackendError::new)?;
        Ok(None)
    }

    fn leave(&self, (session, place): (Session, Place)) -> Result<(), BackendError> {
        queue::leave(&session, &place).map_err(BackendError::new)?;
        session.close().map_err(BackendError::new)
    }
}

impl Backend for EtcdBackend {
    type Lock<'a> = (Session, Place);
    type Term<'a> = (Session, Place);
    type Claims<'a> = Session;

    fn lock(
        &self,
        name: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Lock<'_>>, BackendError> {
        self.first_in_line(&lock_prefix(name), id, wait)
    }

    fn unlock<'a>(&'a self, lock: Self::Lock<'a>) -> Result<(), BackendError> {
        self.leave(lock)
    }

    fn campaign(
        &self,
        election: &str,
        id: &str,
        wait: Wait,
    ) -> Result<Option<Self::Term<'_>>, BackendError> {
        self.first_in_line(&election_prefix(election), id, wait)
    }

    fn epoch<'a>(&'a self, term: &Self::Term<'a>) -> u64 {
        u64::try_from(term.1.revision).unwrap_or(0)
    }

    fn leads<'a>(&'a self, term: &Self::Term<'a>) -> bool {
        term.0.valid()
    }

    fn resign<'a>(&'a self, term: Self::Term<'a>) -> Result<(), BackendError> {
        self.leave(term)
    }

    fn observe(&self, election: &str) -> Result<Option<LeaderView>, BackendError> {
        let (line, _) =
            queue::line(&self.client, &election_prefix(election)).map_err(BackendError::new)?;
        Ok(line.first().map(|kv| LeaderView {
            id: String::from_utf8_lossy(&kv.value).into_owned(),
            epoch: u64::try_from(kv.create_revision).unwrap_or(0),
        }))
    }

    fn append(&self, log: &str, epoch: u64, line: &str) -> Result<Result<(), u64>, BackendError> {
        fence::append(&self.client, log, epoch, line).map_err(BackendError::new)
    }

    fn entries(&self, log: &str) -> Result<Vec<(u64, String)>, BackendError> {
        fence::entries(&self.client, log).map_err(BackendError::new)
    }

    fn claim(
        &self,
        id: &str,
        task: &str,
        paths: &[String],
    ) -> Result<Result<Self::Claims<'_>, Vec<Holder>>, BackendError> {
        let session =
            Session::open(self.client.clone(), self.ttl, true).map_err(BackendError::new)?;
        match claims::claim(&session, &self.namespace, id, task, paths)
            .map_err(BackendError::new)?
        {
            Ok(()) => Ok(Ok(session)),
            Err(holders) => {
                session.close().map_err(BackendError::new)?;
                Ok(Err(holders
                    .into_iter()
                    .map(|h| Holder {
                        path: h.path,
                        id: h.id,
                    })
                    .collect()))
            }
        }
    }

    fn release<'a>(&'a self, claims: Self::Claims<'a>) -> Result<(), BackendError> {
        claims.close().map_err(BackendError::new)
    }
}
