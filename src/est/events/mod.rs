//! TensorBoard event files, as tf.estimator wrote them: `events.out.tfevents.<time>.<host>` in
//! model_dir for training and model_dir/eval for evaluation, TFRecord-framed `Event` messages,
//! each flushed as written so a killed run leaves a readable file. Also the reader the report
//! and the tests use, which merges files the way TensorBoard does.

mod proto;
mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;

use camino::{Utf8Path, Utf8PathBuf};
use prost::Message;

use proto::{
    Event, HistogramProto, Kind, PluginData, Summary, SummaryMetadata, TensorProto, TensorShapeProto, Value, What,
};

/// An event file that could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The file system refused.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What est was doing.
        action: &'static str,
        /// The event file or its folder.
        path: Utf8PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// One summary value to write.
pub enum Item<'a> {
    /// A tag and its value.
    Scalar(&'a str, f32),
    /// A tag and the values whose histogram TensorBoard shows.
    Histogram(&'a str, &'a [f32]),
    /// Markdown, shown by TensorBoard's text plugin.
    Text(&'a str, &'a str),
}

/// An open event file.
pub struct EventWriter {
    file: File,
    /// The file.
    pub path: Utf8PathBuf,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl EventWriter {
    /// A new file in `dir`, named as TensorFlow names them, starting with the version record.
    pub fn create(dir: &Utf8Path, now: f64) -> Result<EventWriter, EventError> {
        std::fs::create_dir_all(dir).map_err(|source| EventError::Io {
            action: "create",
            path: dir.to_owned(),
            source,
        })?;
        let base = format!("events.out.tfevents.{:010}.{}", now as u64, host());
        let mut path = dir.join(&base);
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{base}.{n}"));
            n += 1;
        }
        let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(|source| EventError::Io {
            action: "create",
            path: path.clone(),
            source,
        })?;
        let mut writer = EventWriter { file, path };
        writer.write(Event { wall_time: now, step: 0, what: Some(What::FileVersion("brain.Event:2".into())) })?;
        Ok(writer)
    }

    fn write(&mut self, event: Event) -> Result<(), EventError> {
        record::write(&mut self.file, &event.encode_to_vec())
            .and_then(|()| self.file.flush())
            .map_err(|source| EventError::Io { action: "write", path: self.path.clone(), source })
    }

    /// Marks a restart: TensorBoard drops what earlier files logged after `step`, which a
    /// resumed run will log again.
    pub fn restarted_after(&mut self, step: u64, now: f64) -> Result<(), EventError> {
        let log =
            proto::SessionLog { status: proto::SESSION_START, checkpoint_path: String::new(), msg: String::new() };
        self.write(Event { wall_time: now, step: step as i64 + 1, what: Some(What::SessionLog(log)) })
    }

    /// One `Event` of `items` at `step`, written whole and flushed.
    pub fn summary(&mut self, step: u64, now: f64, items: &[Item]) -> Result<(), EventError> {
        let value = items.iter().map(to_value).collect();
        self.write(Event { wall_time: now, step: step as i64, what: Some(What::Summary(Summary { value })) })
    }
}

fn to_value(item: &Item) -> Value {
    match item {
        Item::Scalar(tag, v) => Value { tag: tag.to_string(), metadata: None, kind: Some(Kind::SimpleValue(*v)) },
        Item::Histogram(tag, values) => {
            Value { tag: tag.to_string(), metadata: None, kind: Some(Kind::Histo(histogram(values))) }
        }
        Item::Text(tag, text) => Value {
            tag: tag.to_string(),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData { plugin_name: "text".into(), content: Vec::new() }),
            }),
            kind: Some(Kind::Tensor(TensorProto {
                dtype: proto::DT_STRING,
                tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
                string_val: vec![text.as_bytes().to_vec()],
            })),
        },
    }
}

/// 30 equal buckets between the smallest and largest value.
fn histogram(values: &[f32]) -> HistogramProto {
    let finite: Vec<f64> = values.iter().map(|&v| v as f64).filter(|v| v.is_finite()).collect();
    let (min, max) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if finite.is_empty() {
        return HistogramProto {
            min: 0.0,
            max: 0.0,
            num: 0.0,
            sum: 0.0,
            sum_squares: 0.0,
            bucket_limit: vec![],
            bucket: vec![],
        };
    }
    let buckets = if max > min { 30 } else { 1 };
    let width = (max - min) / buckets as f64;
    let bucket_limit: Vec<f64> =
        (1..=buckets).map(|i| if i == buckets { max } else { min + width * i as f64 }).collect();
    let mut bucket = vec![0.0; buckets];
    for &v in &finite {
        let i = if width > 0.0 { (((v - min) / width) as usize).min(buckets - 1) } else { 0 };
        bucket[i] += 1.0;
    }
    HistogramProto {
        min,
        max,
        num: finite.len() as f64,
        sum: finite.iter().sum(),
        sum_squares: finite.iter().map(|v| v * v).sum(),
        bucket_limit,
        bucket,
    }
}

/// A value read back from event files.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The tag.
    pub tag: String,
    /// The step.
    pub step: u64,
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    /// The value.
    pub value: PointValue,
}

/// A value as read back.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A scalar.
    Scalar(f32),
    /// Count of values summarised.
    Histogram(f64),
    /// Text, as written.
    Text(String),
}

/// Every value in the event files of `dir` (not its subfolders), oldest file first, with a
/// restart's marker dropping what earlier files logged after it, as TensorBoard does.
pub fn read_dir(dir: &Utf8Path) -> Result<Vec<Point>, EventError> {
    let mut files: Vec<Utf8PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| Utf8PathBuf::from_path_buf(e.path()).ok())
            .filter(|p| p.file_name().is_some_and(|n| n.starts_with("events.out.tfevents.")))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(EventError::Io { action: "list", path: dir.to_owned(), source }),
    };
    files.sort();
    let mut points: Vec<Point> = Vec::new();
    for path in files {
        let mut file =
            File::open(&path).map_err(|source| EventError::Io { action: "open", path: path.clone(), source })?;
        let records = record::read_all(&mut file).map_err(|source| EventError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        for bytes in records {
            let Ok(event) = Event::decode(bytes.as_slice()) else { continue };
            let step = event.step.max(0) as u64;
            match event.what {
                Some(What::SessionLog(log)) if log.status == proto::SESSION_START => points.retain(|p| p.step < step),
                Some(What::Summary(summary)) => {
                    for v in summary.value {
                        let value = match v.kind {
                            Some(Kind::SimpleValue(x)) => PointValue::Scalar(x),
                            Some(Kind::Histo(h)) => PointValue::Histogram(h.num),
                            Some(Kind::Tensor(t)) => PointValue::Text(
                                t.string_val
                                    .first()
                                    .map(|s| String::from_utf8_lossy(s).into_owned())
                                    .unwrap_or_default(),
                            ),
                            None => continue,
                        };
                        points.push(Point { tag: v.tag, step, wall_time: event.wall_time, value });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(points)
}

/// The scalar series of `tag`, in step order.
pub fn series(points: &[Point], tag: &str) -> Vec<(u64, f32)> {
    let mut out: Vec<(u64, f32)> = points
        .iter()
        .filter(|p| p.tag == tag)
        .filter_map(|p| match p.value {
            PointValue::Scalar(v) => Some((p.step, v)),
            _ => None,
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_events_read_back_and_restarts_drop_what_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let mut w = EventWriter::create(dir, 1000.0).unwrap();
        w.summary(1, 1000.0, &[Item::Scalar("loss", 1.5), Item::Text("plan", "a: 1")]).unwrap();
        w.summary(100, 1001.0, &[Item::Scalar("loss", 0.5), Item::Histogram("h", &[1.0, 2.0, 3.0])]).unwrap();
        w.summary(200, 1002.0, &[Item::Scalar("loss", 0.25)]).unwrap();
        // A second run resumed from step 100.
        let mut again = EventWriter::create(dir, 1003.0).unwrap();
        assert_ne!(again.path, w.path);
        again.restarted_after(100, 1003.0).unwrap();
        again.summary(200, 1004.0, &[Item::Scalar("loss", 0.3)]).unwrap();
        let points = read_dir(dir).unwrap();
        assert_eq!(series(&points, "loss"), vec![(1, 1.5), (100, 0.5), (200, 0.3)]);
        assert!(points.iter().any(|p| p.value == PointValue::Histogram(3.0)));
        assert!(points.iter().any(|p| p.value == PointValue::Text("a: 1".into())));
    }

    #[test]
    fn histograms_count_every_value_once() {
        let h = histogram(&[0.0, 0.0, 1.0, 2.0, 3.0, f32::NAN]);
        assert_eq!((h.min, h.max, h.num, h.sum, h.sum_squares), (0.0, 3.0, 5.0, 6.0, 14.0));
        assert_eq!(h.bucket.iter().sum::<f64>(), 5.0);
        assert_eq!(h.bucket_limit.last(), Some(&3.0));
    }
}
