//! The embedded durable log: `<data dir>/revocations.log`.
//!
//! A single gateway needs nothing but this file to keep revocations across
//! restarts. A revoker gets its 200 only after the event is written and
//! `fsync`ed, so the file is append-only, one framed record per event:
//!
//! ```text
//! [u32 LE length][u32 LE crc32 of the JSON][JSON bytes of one Event]
//! ```
//!
//! Replay on open tolerates the one kind of damage an append-only file gets
//! from a crash, a torn last record: a short header, a short body, a length
//! that is zero or over [`MAX_RECORD_LEN`], or a crc mismatch at the end is
//! cut off the file and reported. Damage *followed by* a whole valid record
//! is not a torn write but corruption, and truncating there would silently
//! drop revocations, so `open` refuses with [`LogError::Corrupt`] instead.
//!
//! Compaction rewrites the file with only the live entries (tmp file, fsync,
//! rename, fsync the directory) *without* holding the append lock for the
//! rewrite: it notes where the file ends, writes and syncs the live entries
//! to the scratch file, then takes the lock only to copy the records
//! appended meanwhile, sync that tail and rename. Appends wait for that last
//! step alone (a few milliseconds), not for a rewrite of a million entries.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::event::Event;

/// Name of the log inside the data directory.
pub const FILE_NAME: &str = "revocations.log";
/// Name of the compaction scratch file inside the data directory.
pub const TMP_FILE_NAME: &str = "revocations.log.tmp";
/// Largest record body accepted. Real events are a few hundred bytes; the
/// cap keeps a corrupt length field from making `open` allocate gigabytes.
pub const MAX_RECORD_LEN: u32 = 64 * 1024;
/// Length and crc, each a little-endian u32.
const HEADER_LEN: u64 = 8;

/// Why the log could not be opened, written or compacted. Every message
/// names the file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O call failed.
    #[error("revocation log {}: {op}: {source}", .path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What was being done, e.g. "fsync".
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A damaged record with whole valid records after it.
    #[error(
        "revocation log {}: damaged record at byte {offset} but a valid record follows at byte {next_valid}; \
         refusing to truncate (that would drop revocations): move the file aside or repair it",
        .path.display()
    )]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// Where the next valid record was found.
        next_valid: u64,
    },
    /// An event whose JSON exceeds [`MAX_RECORD_LEN`].
    #[error("revocation log {}: event encodes to {len} bytes, over the {MAX_RECORD_LEN}-byte record limit", .path.display())]
    TooLarge {
        /// The log file.
        path: PathBuf,
        /// The encoded length.
        len: usize,
    },
    /// An earlier failure left the file in a state this handle cannot vouch
    /// for; reopen the log (which replays and repairs it).
    #[error("revocation log {}: an earlier write failed and could not be undone; reopen the log", .path.display())]
    Broken {
        /// The log file.
        path: PathBuf,
    },
    /// The blocking task doing the write was cancelled or panicked.
    #[error("revocation log {}: write task failed: {reason}", .path.display())]
    Task {
        /// The log file.
        path: PathBuf,
        /// The join error, as text.
        reason: String,
    },
}

/// What `open` found in the file.
#[derive(Debug, Default)]
pub struct Replay {
    /// Every decodable event, in file order.
    pub events: Vec<Event>,
    /// Bytes of torn tail cut off the file (0 if it was clean).
    pub torn_bytes: u64,
    /// Whole, crc-valid records that did not decode as an event (for
    /// example a newer `v`); skipped, not fatal.
    pub skipped_records: usize,
}

/// Handle to the open log. Cheap to clone; clones share the file and lock.
#[derive(Clone, Debug)]
pub struct RevocationLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The data directory, fsynced after creating or renaming the log.
    dir: PathBuf,
    /// `<dir>/revocations.log`.
    path: PathBuf,
    /// `<dir>/revocations.log.tmp`.
    tmp: PathBuf,
    /// Serialises appends and the last step of a compaction (tail copy and
    /// rename), so no append can land in the file being replaced.
    writer: Mutex<Writer>,
    /// One compaction at a time (they share the scratch file).
    compacting: Mutex<()>,
    /// Mirror of `Writer::size` readable without the lock, for metrics.
    size: AtomicU64,
}

#[derive(Debug)]
struct Writer {
    /// Positioned at the end of the last whole record.
    file: File,
    /// Bytes of whole records in `file`.
    size: u64,
    /// Set when a failed write could not be undone; every later write fails.
    broken: bool,
}

impl RevocationLog {
    /// Opens `<dir>/revocations.log`, creating the directory and file if
    /// missing, and replays it. A torn tail is cut off (and logged); damage
    /// followed by valid records is refused (see [`LogError::Corrupt`]).
    pub fn open(dir: &Path) -> Result<(RevocationLog, Replay), LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(TMP_FILE_NAME);
        let existed = path.try_exists().map_err(io_err(&path, "stat"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        if !existed {
            sync_dir(dir)?;
        }
        // A scratch file left by a compaction that crashed before its rename;
        // the log itself is still the complete old one.
        if tmp.try_exists().unwrap_or(false) {
            fs::remove_file(&tmp).map_err(io_err(&tmp, "remove stale compaction file"))?;
        }

        let scan = scan(&mut file, &path)?;
        let torn_bytes = scan.total - scan.valid_len;
        if torn_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                torn_bytes,
                kept_records = scan.events.len() + scan.skipped,
                "revocation log had a torn tail; truncating it"
            );
            file.set_len(scan.valid_len)
                .map_err(io_err(&path, "truncate torn tail"))?;
            file.sync_data().map_err(io_err(&path, "fsync"))?;
        }
        file.seek(SeekFrom::Start(scan.valid_len))
            .map_err(io_err(&path, "seek"))?;

        let log = RevocationLog {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                path,
                tmp,
                writer: Mutex::new(Writer {
                    file,
                    size: scan.valid_len,
                    broken: false,
                }),
                size: AtomicU64::new(scan.valid_len),
                compacting: Mutex::new(()),
            }),
        };
        let replay = Replay {
            events: scan.events,
            torn_bytes,
            skipped_records: scan.skipped,
        };
        Ok((log, replay))
    }

    /// Appends one record and returns only once it is on disk
    /// (`sync_data`). Concurrent appends are serialised.
    pub async fn append(&self, ev: &Event) -> Result<(), LogError> {
        let frame = encode(ev, &self.shared.path)?;
        self.blocking(move |shared| shared.append(&frame)).await
    }

    /// Appends several records with one `sync_data`; returns once all are
    /// on disk. (The fleet consumer stores each batch it reads this way.)
    pub async fn append_batch(&self, events: &[Event]) -> Result<(), LogError> {
        self.append_batch_synced(events, true).await
    }

    /// [`RevocationLog::append_batch`], with the `sync_data` left to a later
    /// [`RevocationLog::sync`] when `sync` is false (a replica catching up
    /// with a long stream stores it without one fsync per read).
    pub async fn append_batch_synced(&self, events: &[Event], sync: bool) -> Result<(), LogError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut frames = Vec::new();
        for ev in events {
            frames.extend_from_slice(&encode(ev, &self.shared.path)?);
        }
        self.blocking(move |shared| shared.append_maybe_synced(&frames, sync))
            .await
    }

    /// Syncs what was appended without a sync.
    pub async fn sync(&self) -> Result<(), LogError> {
        self.blocking(|shared| {
            let w = shared.lock()?;
            w.file.sync_data().map_err(|source| LogError::Io {
                path: shared.path.clone(),
                op: "fsync",
                source,
            })
        })
        .await
    }

    /// Rewrites the log to hold `live`, plus whatever is appended while the
    /// rewrite runs (those records are copied over at the end).
    pub async fn compact(&self, live: &[Event]) -> Result<(), LogError> {
        let mut bytes = Vec::new();
        for ev in live {
            bytes.extend_from_slice(&encode(ev, &self.shared.path)?);
        }
        self.blocking(move |shared| shared.rewrite(|| Ok(bytes), || {}))
            .await
    }

    /// Rewrites the log to hold what `live()` returns plus every record
    /// appended after `live()` was called. `live()` runs after the end of the
    /// file is noted, so with writers that apply an event to the state
    /// *before* appending it, `compact_with(move || state.snapshot())` cannot
    /// lose a racing revocation: an event missing from the snapshot was
    /// applied after it, so its record lies past the noted end and is copied.
    pub async fn compact_with<F>(&self, live: F) -> Result<(), LogError>
    where
        F: FnOnce() -> Vec<Event> + Send + 'static,
    {
        self.compact_paused(live, || {}).await
    }

    /// [`RevocationLog::compact_with`] that calls `pause` once the live
    /// entries are written and synced, before the final step takes the
    /// append lock: lets tests append while a compaction is in progress.
    #[doc(hidden)]
    pub async fn compact_paused<F, P>(&self, live: F, pause: P) -> Result<(), LogError>
    where
        F: FnOnce() -> Vec<Event> + Send + 'static,
        P: FnOnce() + Send + 'static,
    {
        self.blocking(move |shared| {
            shared.rewrite(
                || {
                    let mut bytes = Vec::new();
                    for ev in live() {
                        bytes.extend_from_slice(&encode(&ev, &shared.path)?);
                    }
                    Ok(bytes)
                },
                pause,
            )
        })
        .await
    }

    /// Current file size in bytes (whole records only).
    pub fn size_bytes(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// The log file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs file I/O off the async workers; `fsync` can block for a while.
    async fn blocking<F>(&self, f: F) -> Result<(), LogError>
    where
        F: FnOnce(&Shared) -> Result<(), LogError> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| LogError::Task {
                path: self.shared.path.clone(),
                reason: e.to_string(),
            })?
    }
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Writer>, LogError> {
        // A panic while holding the lock cannot leave a half-written record
        // unnoticed: every write path either completes, rolls back or sets
        // `broken` before returning.
        let w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if w.broken {
            return Err(LogError::Broken {
                path: self.path.clone(),
            });
        }
        Ok(w)
    }

    fn append(&self, frame: &[u8]) -> Result<(), LogError> {
        self.append_maybe_synced(frame, true)
    }

    fn append_maybe_synced(&self, frame: &[u8], sync: bool) -> Result<(), LogError> {
        let mut w = self.lock()?;
        let before = w.size;
        let written = w
            .file
            .write_all(frame)
            .and_then(|()| if sync { w.file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                w.size = before + frame.len() as u64;
                self.size.store(w.size, Ordering::Release);
                Ok(())
            }
            Err(source) => {
                // Cut off whatever part of the record landed, so the next
                // append does not follow garbage (which replay would then
                // have to treat as corruption).
                let undone = w
                    .file
                    .set_len(before)
                    .and_then(|()| w.file.seek(SeekFrom::Start(before)).map(drop));
                if undone.is_err() {
                    w.broken = true;
                }
                Err(LogError::Io {
                    path: self.path.clone(),
                    op: "append",
                    source,
                })
            }
        }
    }

    fn rewrite(
        &self,
        bytes: impl FnOnce() -> Result<Vec<u8>, LogError>,
        pause: impl FnOnce(),
    ) -> Result<(), LogError> {
        let _one = self
            .compacting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Records past `mark` are copied into the new file at the end.
        let mark = self.lock()?.size;
        let bytes = bytes()?;
        let mut new_file = match self.write_tmp(&bytes) {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                return Err(e);
            }
        };
        // Copy what was appended during the rewrite without the lock, while
        // there is much of it, so the locked step copies a few records only.
        let copy_err = |source| {
            let _ = fs::remove_file(&self.tmp);
            LogError::Io {
                path: self.tmp.clone(),
                op: "copy records appended during compaction",
                source,
            }
        };
        let mut copied = mark;
        let reader = File::open(&self.path).map_err(io_err(&self.path, "open"))?;
        for _ in 0..4 {
            let end = self.lock()?.size;
            if end - copied <= UNLOCKED_COPY_BELOW {
                break;
            }
            copy_tail(&reader, copied, end - copied, &mut new_file, false).map_err(copy_err)?;
            copied = end;
        }
        if copied > mark {
            new_file.sync_data().map_err(copy_err)?;
        }
        pause();
        let mut w = self.lock()?;
        if w.size > copied {
            copy_tail(&reader, copied, w.size - copied, &mut new_file, true).map_err(copy_err)?;
        }
        let tail_len = w.size - mark;
        if let Err(source) = fs::rename(&self.tmp, &self.path) {
            let _ = fs::remove_file(&self.tmp);
            return Err(LogError::Io {
                path: self.path.clone(),
                op: "rename compacted log into place",
                source,
            });
        }
        // The new file is the log now: switch to it before anything else can
        // fail, or later appends would go to the unlinked old file.
        w.file = new_file;
        w.size = bytes.len() as u64 + tail_len;
        self.size.store(w.size, Ordering::Release);
        if let Err(e) = sync_dir(&self.dir) {
            // Until the rename is durable a crash could bring back the old
            // file without our later appends; refuse them rather than lie.
            w.broken = true;
            return Err(e);
        }
        Ok(())
    }

    fn write_tmp(&self, bytes: &[u8]) -> Result<File, LogError> {
        let tmp = &self.tmp;
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .map_err(io_err(tmp, "create"))?;
        f.write_all(bytes).map_err(io_err(tmp, "write"))?;
        f.sync_all().map_err(io_err(tmp, "fsync"))?;
        Ok(f)
    }
}

/// Appends `len` bytes of `from` starting at `at` to `to` (and syncs `to`).
fn copy_tail(from: &File, at: u64, len: u64, to: &mut File, sync: bool) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    from.read_exact_at(&mut buf, at)?;
    to.write_all(&buf)?;
    if sync { to.sync_data() } else { Ok(()) }
}

/// Appended bytes left for the locked step of a compaction, at most (roughly).
const UNLOCKED_COPY_BELOW: u64 = 16 * 1024;

/// One framed record.
fn encode(ev: &Event, path: &Path) -> Result<Vec<u8>, LogError> {
    let json = ev.to_json();
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&l| l <= MAX_RECORD_LEN)
        .ok_or_else(|| LogError::TooLarge {
            path: path.to_path_buf(),
            len: json.len(),
        })?;
    let mut frame = Vec::with_capacity(HEADER_LEN as usize + json.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(json.as_bytes()).to_le_bytes());
    frame.extend_from_slice(json.as_bytes());
    Ok(frame)
}

struct Scan {
    events: Vec<Event>,
    skipped: usize,
    /// End of the last whole, crc-valid record.
    valid_len: u64,
    /// File length when scanned.
    total: u64,
}

/// Reads records from the start of `file` until the end or the first damaged
/// one, streaming so a large log is not held in memory twice.
fn scan(file: &mut File, path: &Path) -> Result<Scan, LogError> {
    let total = file.metadata().map_err(io_err(path, "stat"))?.len();
    let mut events = Vec::new();
    let mut skipped = 0;
    let mut pos = 0u64;
    let mut body = Vec::new();
    {
        let mut reader = BufReader::with_capacity(64 * 1024, &mut *file);
        while pos < total {
            let rest = total - pos;
            if rest < HEADER_LEN {
                break;
            }
            let mut header = [0u8; HEADER_LEN as usize];
            reader
                .read_exact(&mut header)
                .map_err(io_err(path, "read"))?;
            let (len, crc) = parse_header(&header);
            if !len_ok(len) || u64::from(len) > rest - HEADER_LEN {
                break;
            }
            body.resize(len as usize, 0);
            reader.read_exact(&mut body).map_err(io_err(path, "read"))?;
            if crc32fast::hash(&body) != crc {
                break;
            }
            match Event::from_json(&body) {
                Ok(ev) => events.push(ev),
                Err(err) => {
                    skipped += 1;
                    tracing::warn!(path = %path.display(), offset = pos, error = %err,
                        "skipping revocation log record that is not a valid event");
                }
            }
            pos += HEADER_LEN + u64::from(len);
        }
    }
    if pos < total {
        refuse_if_valid_records_follow(file, path, pos)?;
    }
    Ok(Scan {
        events,
        skipped,
        valid_len: pos,
        total,
    })
}

/// A torn write leaves garbage only at the very end. If a whole valid record
/// appears anywhere after the damaged one, the damage is corruption.
fn refuse_if_valid_records_follow(file: &mut File, path: &Path, bad: u64) -> Result<(), LogError> {
    file.seek(SeekFrom::Start(bad))
        .map_err(io_err(path, "seek"))?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(io_err(path, "read"))?;
    match find_frame(rest.get(1..).unwrap_or_default()) {
        Some(at) => Err(LogError::Corrupt {
            path: path.to_path_buf(),
            offset: bad,
            next_valid: bad + 1 + at as u64,
        }),
        None => Ok(()),
    }
}

/// Offset of the first whole, crc-valid frame in `buf`, trying every byte.
fn find_frame(buf: &[u8]) -> Option<usize> {
    let header = HEADER_LEN as usize;
    (0..buf.len().saturating_sub(header)).find(|&i| {
        let Some(h) = buf.get(i..i + header).and_then(|h| h.try_into().ok()) else {
            return false;
        };
        let (len, crc) = parse_header(h);
        if !len_ok(len) {
            return false;
        }
        buf.get(i + header..i + header + len as usize)
            .is_some_and(|body| crc32fast::hash(body) == crc)
    })
}

fn parse_header(h: &[u8; HEADER_LEN as usize]) -> (u32, u32) {
    let [a, b, c, d, e, f, g, i] = *h;
    (
        u32::from_le_bytes([a, b, c, d]),
        u32::from_le_bytes([e, f, g, i]),
    )
}

/// Zero is never a real event, and a zeroed tail (a common shape of a torn
/// write) would otherwise read as empty records with a valid crc.
fn len_ok(len: u32) -> bool {
    len > 0 && len <= MAX_RECORD_LEN
}

fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { path, op, source }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
