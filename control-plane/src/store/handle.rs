//! The store thread: owns the SQLite connection, runs each change in one
//! transaction, and publishes a new fleet picture after every commit.

use std::sync::mpsc;
use std::sync::Arc;

use rusqlite::{Connection, Transaction};
use tokio::sync::{oneshot, watch};

use super::{load_fleet, StoreError};
use crate::model::Fleet;

type Job = Box<dyn FnOnce(&mut Connection, &mut u64, &watch::Sender<Arc<Fleet>>) + Send>;

/// Handle to the store thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    jobs: mpsc::Sender<Job>,
    fleet: watch::Receiver<Arc<Fleet>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Starts the thread over an open (and seeded) connection.
    pub fn start(conn: Connection) -> Result<Store, StoreError> {
        let first = load_fleet(&conn, 1)?;
        let (tx, rx) = watch::channel(Arc::new(first));
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("usher-store".into())
            .spawn(move || {
                let mut conn = conn;
                let mut generation = 1u64;
                while let Ok(job) = queue.recv() {
                    job(&mut conn, &mut generation, &tx);
                }
            })
            .map_err(|e| StoreError::Conflict(format!("cannot start the store thread: {e}")))?;
        Ok(Store { jobs, fleet: rx })
    }

    /// The latest published picture.
    pub fn fleet(&self) -> Arc<Fleet> {
        self.fleet.borrow().clone()
    }

    /// A receiver that wakes on every new picture.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Fleet>> {
        self.fleet.clone()
    }

    /// Runs `change` in one transaction on the store thread. On success the
    /// transaction is committed and a new picture published before this
    /// returns; on error nothing is changed.
    pub async fn mutate<T, F>(&self, change: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn, generation, publish| {
            let result = run_change(conn, generation, publish, change);
            if reply.send(result).is_err() {
                tracing::debug!("a store caller went away before its answer");
            }
        });
        self.jobs.send(job).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }
}

fn run_change<T, F>(
    conn: &mut Connection,
    generation: &mut u64,
    publish: &watch::Sender<Arc<Fleet>>,
    change: F,
) -> Result<T, StoreError>
where
    F: FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
{
    let tx = conn.transaction()?;
    let value = change(&tx)?;
    let fleet = load_fleet(&tx, *generation + 1)?;
    tx.commit()?;
    *generation += 1;
    publish.send_replace(Arc::new(fleet));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{App, Origin, Server};
    use crate::store::{self, open};

    fn app(name: &str, port: u16) -> App {
        App {
            name: name.into(),
            origin: Origin::Api,
            listen: ([127, 0, 0, 1], port).into(),
            public_url: format!("http://127.0.0.1:{port}"),
            mode: usher_core::AppMode::Redirect,
            enabled: true,
            sorry_page: None,
            rules: Default::default(),
            epsilon: 0.0,
            obsolescence_secs: 1200.0,
            max_concurrent: 10,
            panic_threshold_pct: 50.0,
            policy: Default::default(),
        }
    }

    fn server(name: &str, app: &str) -> Server {
        Server {
            name: name.into(),
            origin: Origin::Api,
            app: app.into(),
            url: "http://127.0.0.1:9".into(),
            capacity: 5,
            enabled: true,
            pinned_load: None,
            pinned_until_unix: None,
            redirect: None,
        }
    }

    #[tokio::test]
    async fn changes_commit_publish_and_persist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usher.db");
        let s = Store::start(open(&path).expect("open")).expect("start");
        let mut rx = s.subscribe();
        s.mutate(|tx| store::add_app(tx, &app("shop", 18080)))
            .await
            .expect("add app");
        s.mutate(|tx| store::add_server(tx, &server("a", "shop")))
            .await
            .expect("add a");
        s.mutate(|tx| store::add_server(tx, &server("b", "shop")))
            .await
            .expect("add b");
        s.mutate(|tx| store::set_load(tx, "a", Some((1500, None))))
            .await
            .expect("load");
        assert!(rx.has_changed().expect("open"));
        let f = rx.borrow_and_update().clone();
        assert_eq!(f.generation, 5);
        assert_eq!(f.server("a").and_then(|x| x.pinned_load), Some(1500));

        // A refused change leaves nothing half-applied and publishes nothing.
        let e = s
            .mutate(|tx| {
                store::set_load(tx, "a", Some((9, None)))?;
                store::set_redirect(tx, "a", Some("nope"))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { ref field, .. } if field == "target"),
            "{e}"
        );
        assert!(!rx.has_changed().expect("open"));
        assert!(matches!(
            s.mutate(|tx| store::remove_app(tx, "shop")).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.mutate(|tx| store::set_server_enabled(tx, "zz", false))
                .await,
            Err(StoreError::NotFound { kind: "server", .. })
        ));
        s.mutate(|tx| store::set_redirect(tx, "a", Some("b")))
            .await
            .expect("redirect");
        s.mutate(|tx| store::remove_server(tx, "b"))
            .await
            .expect("remove b");
        assert_eq!(s.fleet().server("a").and_then(|x| x.redirect.clone()), None);
        drop(s);

        // Reopening sees every committed change.
        let conn = open(&path).expect("reopen");
        let f = load_fleet(&conn, 1).expect("load");
        assert_eq!(f.servers.len(), 1);
        assert_eq!(f.server("a").and_then(|x| x.pinned_load), Some(1500));
    }
}
