//! Where rows come from: the files a data block's paths and globs name, each file's format
//! (CSV, gzip or zstd CSV, Parquet) from its name, its columns, and a compressed file's text.

use std::io::Read;

use camino::{Utf8Path, Utf8PathBuf};

use super::error::DataError;
use super::parquet;
use crate::pipeline::{is_glob, Files, GLOB};

/// How a data file is stored, as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Plain CSV (or another delimiter).
    Csv,
    /// CSV compressed with gzip: `.gz`.
    Gzip,
    /// CSV compressed with zstd: `.zst`.
    Zstd,
    /// Apache Parquet: `.parquet` or `.pq`.
    Parquet,
}

impl Format {
    /// The format of `path`, by its extension.
    pub fn of(path: &Utf8Path) -> Format {
        match path.extension().map(str::to_ascii_lowercase).as_deref() {
            Some("gz" | "gzip") => Format::Gzip,
            Some("zst" | "zstd") => Format::Zstd,
            Some("parquet" | "pq") => Format::Parquet,
            _ => Format::Csv,
        }
    }
}

/// The files `files` names, in order: a path as it is, a glob's matches in name order. A glob
/// that matches nothing is an error; a plain path that does not exist is left to the reader,
/// which names it.
pub fn expand(files: &Files) -> Result<Vec<Utf8PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in files.entries() {
        if !is_glob(entry.as_str()) {
            out.push(entry.clone());
            continue;
        }
        let matches =
            glob::glob_with(entry.as_str(), GLOB).map_err(|_| DataError::NoMatch { pattern: entry.clone() })?;
        let mut found: Vec<Utf8PathBuf> = matches
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
            .collect();
        if found.is_empty() {
            return Err(DataError::NoMatch { pattern: entry.clone() });
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

/// A file's column names: the data block's `columns`, a CSV header (decompressed as needed), or
/// a Parquet schema. The reason is a sentence for a message naming the file.
pub fn column_names(
    path: &Utf8Path,
    delimiter: char,
    header: bool,
    columns: Option<&[String]>,
) -> Result<Vec<String>, String> {
    if Format::of(path) == Format::Parquet {
        return parquet::schema(path).map(|columns| columns.into_iter().map(|c| c.name).collect());
    }
    if let Some(columns) = columns {
        return Ok(columns.to_vec());
    }
    if !header {
        return Err("the file has no header and the data block no `columns`".into());
    }
    let head = head(path).map_err(|e| match e {
        DataError::Decompress { format, reason, .. } => format!("not a valid {format} file: {reason}"),
        DataError::Read { source, .. } => source.to_string(),
        other => other.to_string(),
    })?;
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter as u8).has_headers(true).from_reader(head.as_slice());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err("the file is empty: no header row".into());
    }
    if let Some(name) = crate::pipeline::repeated(&names) {
        return Err(format!("column `{name}` appears twice in the header"));
    }
    Ok(names)
}

/// The first line of a CSV file's text, decompressed as needed.
fn head(path: &Utf8Path) -> Result<Vec<u8>, DataError> {
    const LIMIT: usize = 1 << 20;
    let file = std::fs::File::open(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
    let mut reader = text_reader(path, file)?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => return Err(decompress_error(path, &e, &out)),
        };
        out.extend_from_slice(&chunk[..n]);
        if n == 0 || memchr::memchr(b'\n', &out).is_some() || out.len() > LIMIT {
            return Ok(out);
        }
    }
}

/// A reader of a file's text: the file itself, or its decompressed stream.
fn text_reader<'f>(path: &Utf8Path, file: std::fs::File) -> Result<Box<dyn Read + 'f>, DataError> {
    let file = std::io::BufReader::with_capacity(1 << 16, file);
    Ok(match Format::of(path) {
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        Format::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(|e| decompress_error(path, &e, &[]))?)
        }
        Format::Csv | Format::Parquet => Box::new(file),
    })
}

/// The whole text of a compressed CSV file, decoded as a stream.
pub fn decompressed(path: &Utf8Path) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Read { path: path.to_owned(), source })?;
    // Text is usually several times its compressed size; a hint saves most regrowing.
    let hint = file.metadata().map_or(0, |m| m.len() as usize).saturating_mul(4);
    let mut reader = text_reader(path, file)?;
    let mut out = Vec::with_capacity(hint);
    match reader.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err(decompress_error(path, &e, &out)),
    }
}

fn decompress_error(path: &Utf8Path, e: &std::io::Error, text: &[u8]) -> DataError {
    let format = if Format::of(path) == Format::Zstd { "zstd" } else { "gzip" };
    let line = memchr::memchr_iter(b'\n', text).count() as u64;
    let reason = match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "it ends before its compressed stream does".to_string(),
        _ => e.to_string(),
    };
    DataError::Decompress { path: path.to_owned(), format, reason, line }
}
