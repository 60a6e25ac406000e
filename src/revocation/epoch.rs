//! The fleet's *epoch*: how a replica tells a complete stream from one whose
//! history Redis has lost.
//!
//! The epoch is a consumer group named `scopegate-epoch:<random hex>` on the
//! stream key itself (never read from; it is only a name). It lives and dies
//! with the stream: a Redis restarted without its data, `FLUSHALL`, `DEL` of
//! the key, or eviction all take it away, and an `XADD` that recreates the
//! key does not bring it back. Its presence means "this stream holds every
//! revocation still live"; a replica reads it before every read.
//!
//! Each replica keeps the epoch it last saw in `<data dir>/fleet-epoch`,
//! next to its own durable copy of the revocation set. Only a replica that
//! holds such a copy (it was a member of the fleet) may establish a new
//! epoch, and only after re-publishing its copy into the stream. A replica
//! that knows no epoch and finds none cannot tell an empty history from a
//! lost one: it waits, not ready, until a member re-seeds the stream or an
//! operator declares a new fleet with `scopegate fleet-init`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use redis::aio::MultiplexedConnection;

use super::Event;
use super::stream::StreamError;

/// Prefix of the epoch group's name.
pub const GROUP_PREFIX: &str = "scopegate-epoch:";
/// Name of the file, in the data directory, that holds the epoch last seen.
pub const FILE_NAME: &str = "fleet-epoch";
/// `XADD`s per pipeline when re-publishing.
const PIPELINE: usize = 2000;

/// Returns the epoch group's name, or nil. With `ARGV[1]` set, creates the
/// group (and the stream, if missing) when there is none, and returns the
/// name that is in force: two replicas racing to create one agree on it.
const SCRIPT: &str = r#"
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if ok then
  for _, g in ipairs(groups) do
    for i = 1, #g, 2 do
      if g[i] == 'name' and string.sub(g[i + 1], 1, string.len(ARGV[2])) == ARGV[2] then
        return g[i + 1]
      end
    end
  end
end
if ARGV[1] ~= '' then
  redis.call('XGROUP', 'CREATE', KEYS[1], ARGV[1], '$', 'MKSTREAM')
  return ARGV[1]
end
return false
"#;

fn redis_err(e: redis::RedisError) -> StreamError {
    StreamError::Redis(e.to_string())
}

/// The epoch in force on `key`, if any.
pub async fn read(
    conn: &mut MultiplexedConnection,
    key: &str,
) -> Result<Option<String>, StreamError> {
    run(conn, key, "").await
}

/// Establishes `candidate` as the epoch unless one exists; returns the one in force.
pub async fn establish(
    conn: &mut MultiplexedConnection,
    key: &str,
    candidate: &str,
) -> Result<String, StreamError> {
    run(conn, key, candidate)
        .await?
        .ok_or_else(|| StreamError::Redis("the epoch could not be created".into()))
}

async fn run(
    conn: &mut MultiplexedConnection,
    key: &str,
    create: &str,
) -> Result<Option<String>, StreamError> {
    // EVAL with the text each time (a few hundred bytes, a few times a
    // second): no `script` feature, and nothing to reload after a restart.
    redis::cmd("EVAL")
        .arg(SCRIPT)
        .arg(1)
        .arg(key)
        .arg(create)
        .arg(GROUP_PREFIX)
        .query_async(conn)
        .await
        .map_err(redis_err)
}

/// A fresh epoch name: 16 random bytes from the OS.
pub fn fresh() -> Result<String, StreamError> {
    let mut buf = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| StreamError::Redis("the OS random source failed".into()))?;
    Ok(format!("{GROUP_PREFIX}{}", crate::digest::hex(&buf)))
}

/// `XADD`s every event, [`PIPELINE`] to a round trip. Returns how many.
pub async fn republish(
    conn: &mut MultiplexedConnection,
    key: &str,
    events: &[Event],
) -> Result<usize, StreamError> {
    for chunk in events.chunks(PIPELINE) {
        let mut pipe = redis::pipe();
        for ev in chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("event")
                .arg(ev.to_json())
                .ignore();
        }
        let () = pipe.query_async(conn).await.map_err(redis_err)?;
    }
    Ok(events.len())
}

/// The epoch file of a data directory.
pub fn file(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// The epoch this replica last saw (none for a replica that never joined).
pub fn load(dir: &Path) -> Result<Option<String>, std::io::Error> {
    match fs::read_to_string(file(dir)) {
        Ok(s) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records the epoch durably (write, fsync, rename, fsync the directory).
pub fn store(dir: &Path, epoch: &str) -> Result<(), std::io::Error> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(epoch.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file(dir))?;
    fs::File::open(dir)?.sync_all()
}

/// What [`init_fleet`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Init {
    /// There was no epoch; this one now declares the stream complete.
    Created(String),
    /// An epoch was already in force; nothing changed.
    Existing(String),
}

/// `scopegate fleet-init`: declares the stream on `url`/`key` complete as it
/// is, for a new fleet (or after deciding that lost history is gone for good).
pub async fn init_fleet(url: &str, key: &str) -> Result<Init, StreamError> {
    let client = redis::Client::open(url).map_err(redis_err)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(redis_err)?;
    if let Some(e) = read(&mut conn, key).await? {
        return Ok(Init::Existing(e));
    }
    let candidate = fresh()?;
    let e = establish(&mut conn, key, &candidate).await?;
    Ok(if e == candidate {
        Init::Created(e)
    } else {
        Init::Existing(e)
    })
}
