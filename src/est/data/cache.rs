//! The parsed-data cache: a data file's table, as the plan read it, in a columnar file in the
//! cache folder, so that the next `est train`, `est evaluate` and every restart of `est watch`
//! reads its columns back instead of parsing the file again. An entry is named by the file's
//! path, size and modification time and by every plan setting that shapes the table, and holds
//! the file's CRC-32C, which a read checks while it reads the columns; it carries a checksum of
//! its own. A damaged entry, a full disk or a cache over its size
//! limit only means parsing: the cache never fails a run.

use std::io::{Read, Write};

#[cfg(not(target_endian = "little"))]
compile_error!("cache entries hold columns as little-endian bytes");
use std::sync::atomic::{AtomicBool, Ordering};

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use super::stats::Acc;
use super::table::{IdColumn, Labels, NumericBlock, NumericColumn, Table};
use super::Purpose;
use super::Values;
use crate::plan::Plan;

const MAGIC: &[u8; 8] = b"ESTTABLE";
/// Bumped whenever the layout of an entry or the meaning of a table changes.
const VERSION: u32 = 3;
/// The magic, the version, the key and the data file's CRC-32C.
const HEAD: usize = 8 + 4 + 32 + 4;
/// Files smaller than this parse faster than an entry is checked.
const SMALLEST: u64 = 1 << 20;
/// The cache's size when `EST_CACHE_LIMIT` does not say.
const DEFAULT_LIMIT: u64 = 4 << 30;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns the cache off for this process (`--no-cache`): nothing is read from it or written.
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// Where entries live, and how many bytes they may take together.
#[derive(Clone, Debug)]
pub struct Cache {
    /// The folder of entries.
    pub dir: Utf8PathBuf,
    /// The most bytes its entries may hold; older entries go first.
    pub limit: u64,
}

impl Cache {
    /// The cache this process uses: `$EST_CACHE/tables` (else `$XDG_CACHE_HOME/est/tables`, else
    /// `~/.cache/est/tables`) limited to `EST_CACHE_LIMIT` bytes (`K`, `M` and `G` suffixes;
    /// `0` turns it off); `None` when it is off.
    pub fn current() -> Option<Cache> {
        if DISABLED.load(Ordering::Relaxed) {
            return None;
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let root = var("EST_CACHE")
            .map(Utf8PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|x| Utf8PathBuf::from(x).join("est")))
            .or_else(|| var("HOME").map(|h| Utf8PathBuf::from(h).join(".cache/est")))?;
        let limit = match var("EST_CACHE_LIMIT") {
            Some(text) => parse_size(&text)?,
            None => DEFAULT_LIMIT,
        };
        (limit > 0).then(|| Cache { dir: root.join("tables"), limit })
    }

    /// The entry for `path` read by `plan` for `purpose`; `None` for a small or unreadable file.
    pub fn entry(&self, plan: &Plan, path: &Utf8Path, purpose: Purpose) -> Option<Entry> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.len() < SMALLEST || meta.len() > self.limit {
            return None;
        }
        let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
        let mut hash = Sha256::new();
        hash.update(MAGIC);
        hash.update(VERSION.to_le_bytes());
        hash.update(env!("CARGO_PKG_VERSION"));
        hash.update(std::fs::canonicalize(path).ok()?.to_string_lossy().as_bytes());
        hash.update(meta.len().to_le_bytes());
        hash.update(modified.to_le_bytes());
        hash.update([u8::from(purpose == Purpose::Labelled)]);
        // Everything the readers consult: the data block but for which files, the features,
        // the head.
        let mut data = plan.data.clone();
        data.train = crate::pipeline::Files(Vec::new());
        data.eval = None;
        data.predict = None;
        for part in [
            serde_json::to_string(&data).ok()?,
            serde_json::to_string(&plan.features).ok()?,
            serde_json::to_string(&plan.model.head).ok()?,
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
        let key: [u8; 32] = hash.finalize().into();
        let name: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Some(Entry { cache: self.clone(), path: self.dir.join(name), key, data: path.to_path_buf() })
    }
}

/// `1234`, `512K`, `64M`, `4G`.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, scale) = match text.char_indices().last()? {
        (i, 'K' | 'k') => (&text[..i], 1 << 10),
        (i, 'M' | 'm') => (&text[..i], 1 << 20),
        (i, 'G' | 'g') => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits.trim().parse::<u64>().ok()?.checked_mul(scale)
}

/// The CRC-32C of a file's bytes, its halves read side by side. Read, not mapped: a data file
/// cut short while mapped would end the process.
fn crc_of(path: &Utf8Path) -> Option<u32> {
    let len = std::fs::metadata(path).ok()?.len();
    let half = len / 2;
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| crc_of_range(path, half, len - half));
        (crc_of_range(path, 0, half), second.join().ok().flatten())
    });
    Some(crc32c::crc32c_combine(first?, second?, (len - half) as usize))
}

/// The CRC-32C of `len` bytes of a file from `start`, in pieces that stay in the core's cache
/// between the copy out of the page cache and the sum.
fn crc_of_range(path: &Utf8Path, start: u64, len: u64) -> Option<u32> {
    use std::io::Seek;
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(std::io::SeekFrom::Start(start)).ok()?;
    let mut file = file.take(len);
    let mut buffer = vec![0u8; 256 << 10];
    let mut crc = 0u32;
    let mut left = len;
    while left > 0 {
        let n = file.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        left -= n as u64;
    }
    Some(crc)
}

/// One file's place in the cache.
pub struct Entry {
    cache: Cache,
    /// The entry's file.
    pub path: Utf8PathBuf,
    key: [u8; 32],
    /// The data file it holds the table of.
    data: Utf8PathBuf,
}

impl Entry {
    /// The table, when the entry is there, whole and of the data file as it is now; else the
    /// data file's CRC-32C, when it was computed, for `write`.
    pub fn read(&self) -> Result<Table, Option<u32>> {
        let file = std::fs::File::open(&self.path).map_err(|_| None)?;
        // The data file's checksum is computed while the columns are read: together they took
        // twice as long.
        let (table, data_crc) = std::thread::scope(|scope| {
            let data_crc = scope.spawn(|| crc_of(&self.data));
            let table = self.decode(file);
            (table, data_crc.join().ok().flatten())
        });
        let table = match table {
            Some((table, stored)) if Some(stored) == data_crc => table,
            _ => return Err(data_crc),
        };
        // Used lately: the last to go when the cache is over its limit.
        let _ = std::fs::File::options()
            .append(true)
            .open(&self.path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Ok(table)
    }

    /// The entry's table and the data file's CRC-32C it was made from, when it is whole.
    fn decode(&self, file: std::fs::File) -> Option<(Table, u32)> {
        let size = file.metadata().ok()?.len();
        let mut r = Stream { file: std::io::BufReader::with_capacity(1 << 20, file), size, crc: 0, read: 0 };
        let mut head = [0u8; HEAD];
        r.file.read_exact(&mut head).ok()?;
        if &head[..8] != MAGIC || head[8..12] != VERSION.to_le_bytes() || head[12..44] != self.key {
            return None;
        }
        let data_crc = u32::from_le_bytes(head[44..].try_into().ok()?);
        let table = decode(&mut r)?;
        let (crc, read) = (r.crc, r.read);
        let mut trailer = [0u8; 12];
        r.file.read_exact(&mut trailer).ok()?;
        let whole = u64::from_le_bytes(trailer[..8].try_into().ok()?) == read
            && u32::from_le_bytes(trailer[8..].try_into().ok()?) == crc
            && size == HEAD as u64 + read + 12;
        whole.then_some((table, data_crc))
    }

    /// Stores `table`, parsed from the data file whose CRC-32C is `data_crc` (computed here
    /// when `None`), atomically; a failure (a full disk, a read-only folder) leaves no entry.
    pub fn write(&self, table: &Table, data_crc: Option<u32>) {
        let total = encoded_len(table) + HEAD as u64 + 12;
        if total > self.cache.limit || std::fs::create_dir_all(&self.cache.dir).is_err() {
            return;
        }
        let Some(data_crc) = data_crc.or_else(|| crc_of(&self.data)) else { return };
        self.make_room(total);
        let name = self.path.file_name().unwrap_or("entry");
        let temp = self.cache.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let file = std::fs::File::create(&temp)?;
            let mut w = Sink { file: std::io::BufWriter::with_capacity(1 << 20, file), crc: 0, written: 0 };
            w.file.write_all(MAGIC)?;
            w.file.write_all(&VERSION.to_le_bytes())?;
            w.file.write_all(&self.key)?;
            w.file.write_all(&data_crc.to_le_bytes())?;
            encode(table, &mut w)?;
            let (len, crc) = (w.written, w.crc);
            w.file.write_all(&len.to_le_bytes())?;
            w.file.write_all(&crc.to_le_bytes())?;
            // No fsync: an entry a crash cut short fails its checksum, and the file is parsed.
            w.file.flush()?;
            std::fs::rename(&temp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
    }

    /// Removes the least recently used entries until `incoming` more bytes fit the limit.
    fn make_room(&self, incoming: u64) {
        let Ok(dir) = std::fs::read_dir(&self.cache.dir) else { return };
        let mut entries: Vec<(std::time::SystemTime, u64, std::path::PathBuf)> = dir
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        entries.sort();
        let mut used: u64 = entries.iter().map(|e| e.1).sum();
        for (_, len, path) in entries {
            if used + incoming <= self.cache.limit {
                break;
            }
            if std::fs::remove_file(path).is_ok() {
                used -= len;
            }
        }
    }
}

/// Values whose bytes are their little-endian encoding on this machine.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes is a value.
unsafe trait Plain: Copy + Default {}
// SAFETY: every bit pattern is an f32, an i64, a u64.
unsafe impl Plain for f32 {}
// SAFETY: as above.
unsafe impl Plain for i64 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: as above.
unsafe impl Plain for f64 {}

fn bytes_of<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: a `Plain` slice is initialised memory of `size_of_val` bytes.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

fn bytes_of_mut<T: Plain>(values: &mut [T]) -> &mut [u8] {
    // SAFETY: as `bytes_of`; any bytes written make `Plain` values.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

/// Writes the payload, counting its bytes and their CRC-32C.
struct Sink {
    file: std::io::BufWriter<std::fs::File>,
    crc: u32,
    written: u64,
}

impl Sink {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes)
    }
    fn n(&mut self, x: usize) -> std::io::Result<()> {
        self.put(&(x as u64).to_le_bytes())
    }
    fn text(&mut self, s: &str) -> std::io::Result<()> {
        self.n(s.len())?;
        self.put(s.as_bytes())
    }
    fn values<T: Plain>(&mut self, v: &[T]) -> std::io::Result<()> {
        self.n(v.len())?;
        self.put(&[0; ALIGN][..padding(self.written)])?;
        self.put(bytes_of(v))
    }
}

/// Values start on a multiple of this in an entry, so that they can be mapped in place.
const ALIGN: usize = 8;

/// The zeros before values that would start `at` bytes into the payload.
fn padding(at: u64) -> usize {
    let at = (HEAD as u64 + at) as usize;
    at.next_multiple_of(ALIGN) - at
}

/// Reads the payload, counting its bytes and their CRC-32C.
struct Stream {
    file: std::io::BufReader<std::fs::File>,
    /// The entry's length.
    size: u64,
    crc: u32,
    read: u64,
}

impl Stream {
    fn fill(&mut self, out: &mut [u8]) -> Option<()> {
        self.file.read_exact(out).ok()?;
        self.crc = crc32c::crc32c_append(self.crc, out);
        self.read += out.len() as u64;
        Some(())
    }
    fn n(&mut self) -> Option<usize> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        usize::try_from(u64::from_le_bytes(b)).ok()
    }
    fn byte(&mut self) -> Option<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Some(b[0])
    }
    fn text(&mut self) -> Option<String> {
        let n = self.n()?;
        if n > 1 << 20 {
            return None;
        }
        let mut b = vec![0u8; n];
        self.fill(&mut b)?;
        String::from_utf8(b).ok()
    }
    /// As many values as the entry says, read straight into their vector; no more than `most`.
    fn values<T: Plain>(&mut self, most: usize) -> Option<Vec<T>> {
        let n = self.start_values(most)?;
        let mut v = vec![T::default(); n];
        self.fill(bytes_of_mut(&mut v))?;
        Some(v)
    }

    /// As `values`, mapped from the entry in place rather than read: the checksum still reads
    /// every byte, but nothing is copied.
    fn mapped<T: Plain>(&mut self, most: usize) -> Option<Values<T>> {
        let n = self.start_values(most)?;
        let offset = HEAD as u64 + self.read;
        // A mapping past the end of the file would fault when read: an entry cut short is not.
        if offset.checked_add(u64::try_from(n.checked_mul(size_of::<T>())?).ok()?)? > self.size {
            return None;
        }
        // SAFETY: `Plain` values take any bits; `start_values` aligned the offset; an entry is
        // replaced by renaming another file over it, never cut short in place.
        let values = unsafe { Values::<T>::mapped(self.file.get_ref(), offset, n) }.ok()?;
        let bytes = bytes_of(&values);
        self.file.seek_relative(i64::try_from(bytes.len()).ok()?).ok()?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.read += bytes.len() as u64;
        Some(values)
    }

    /// The count of the values that follow, at most `most`, and the padding before them read.
    fn start_values(&mut self, most: usize) -> Option<usize> {
        let n = self.n()?;
        if n > most {
            return None;
        }
        let mut pad = [0u8; ALIGN];
        let pad = &mut pad[..padding(self.read)];
        self.fill(pad)?;
        Some(n)
    }
}

fn encoded_len(t: &Table) -> u64 {
    (t.numeric.values.len() * 4
        + t.ids.values().map(|c| c.ids.len() * 8 + 64 + ALIGN).sum::<usize>()
        + t.rows * 8
        + t.numeric.columns.len() * (96 + 2 * ALIGN)
        + 4096) as u64
}

/// A table as bytes: counts, then each column's values as they lie in memory.
fn encode(t: &Table, w: &mut Sink) -> std::io::Result<()> {
    w.n(t.rows)?;
    w.n(t.skipped)?;
    match &t.first_skipped {
        Some(s) => {
            w.put(&[1])?;
            w.text(s)?;
        }
        None => w.put(&[0])?,
    }
    let n = &t.numeric;
    w.n(n.width)?;
    w.n(n.columns.len())?;
    for c in &n.columns {
        w.text(&c.name)?;
        w.n(c.offset)?;
        w.n(c.shape)?;
        let a = &c.totals;
        w.values(&[a.count])?;
        w.values(&[a.sum, a.sum_sq, a.min, a.max])?;
    }
    w.values(&n.values)?;
    w.n(t.ids.len())?;
    for (name, c) in &t.ids {
        w.text(name)?;
        w.n(c.width)?;
        w.values(&c.ids)?;
    }
    match &t.labels {
        None => w.put(&[0])?,
        Some(Labels::Classes(c)) => {
            w.put(&[1])?;
            w.values(c)?;
        }
        Some(Labels::Values(v)) => {
            w.put(&[2])?;
            w.values(v)?;
        }
    }
    match &t.weights {
        None => w.put(&[0]),
        Some(v) => {
            w.put(&[1])?;
            w.values(v)
        }
    }
}

fn decode(r: &mut Stream) -> Option<Table> {
    let rows = r.n()?;
    let skipped = r.n()?;
    let first_skipped = match r.byte()? {
        0 => None,
        _ => Some(r.text()?),
    };
    let width = r.n()?;
    let count = r.n()?;
    if count > 1 << 16 {
        return None;
    }
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.text()?;
        let (offset, shape) = (r.n()?, r.n()?);
        let count = *r.values::<u64>(1)?.first()?;
        let sums = r.values::<f64>(4)?;
        let [sum, sum_sq, min, max] = sums.try_into().ok()?;
        let totals = Acc { count, sum, sum_sq, min, max };
        columns.push(NumericColumn { name, offset, shape, stats: totals.stats(), totals });
    }
    let cells = rows.checked_mul(width)?;
    let values = r.values::<f32>(cells)?;
    let mut ids = std::collections::BTreeMap::new();
    let columns_of_ids = r.n()?;
    if columns_of_ids > 1 << 16 {
        return None;
    }
    for _ in 0..columns_of_ids {
        let name = r.text()?;
        let width = r.n()?;
        ids.insert(name, IdColumn { ids: r.mapped::<i64>(rows.checked_mul(width)?)?, width });
    }
    let labels = match r.byte()? {
        0 => None,
        1 => Some(Labels::Classes(r.values::<i64>(rows)?)),
        _ => Some(Labels::Values(r.values::<f32>(rows)?)),
    };
    let weights = match r.byte()? {
        0 => None,
        _ => Some(r.values::<f32>(rows)?),
    };
    let consistent = values.len() == cells
        && ids.values().all(|c| c.ids.len() == rows * c.width)
        && labels.as_ref().is_none_or(|l| match l {
            Labels::Classes(c) => c.len() == rows,
            Labels::Values(v) => v.len() == rows,
        })
        && weights.as_ref().is_none_or(|w| w.len() == rows);
    consistent.then_some(Table {
        rows,
        numeric: NumericBlock { values, width, columns },
        ids,
        labels,
        weights,
        skipped,
        first_skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_read_with_their_suffixes() {
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size(" 64M "), Some(64 << 20));
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("lots"), None);
    }
}
