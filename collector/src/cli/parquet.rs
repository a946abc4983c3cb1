//! Parquet tables for `export --format parquet`: the same columns as the CSV files,
//! typed (integers, doubles, UTF-8 text), snappy-compressed, in row groups of
//! [`ROW_GROUP_ROWS`] rows so that memory stays bounded whatever the period.
//!
//! Written with the `parquet` crate's column writers, without Arrow: the export has
//! its rows in hand and Arrow would add a large build for no gain here.

use std::fs::File;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// Rows buffered before they are written as one row group.
const ROW_GROUP_ROWS: usize = 65_536;

/// A column's type, as CSV shows it and Parquet stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    /// Signed 64-bit (times, `boot_time_unix_s`).
    Int,
    /// Unsigned 64-bit (seq, durations): stored as INT64 annotated unsigned.
    UInt,
    /// 32-bit (`activity_rule`).
    Int32,
    Float,
}

/// One value of a row, in column order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    UInt(u64),
    Int32(i32),
    Float(f64),
}

enum Column {
    Text(Vec<ByteArray>),
    Int(Vec<i64>),
    Int32(Vec<i32>),
    Float(Vec<f64>),
}

/// A Parquet file being written, one row at a time.
pub struct Table {
    /// The writer buffers on its own.
    writer: SerializedFileWriter<File>,
    /// The same file, to sync once the footer is written.
    file: File,
    columns: Vec<Column>,
    rows: usize,
}

impl Table {
    /// A table named `name` with `columns` into `file`.
    pub fn create(
        file: File,
        name: &str,
        columns: &[(&str, Kind)],
    ) -> Result<Self, parquet::errors::ParquetError> {
        let fields: String = columns
            .iter()
            .map(|(n, k)| match k {
                Kind::Text => format!("required binary {n} (UTF8);"),
                Kind::Int => format!("required int64 {n};"),
                Kind::UInt => format!("required int64 {n} (INTEGER(64,false));"),
                Kind::Int32 => format!("required int32 {n};"),
                Kind::Float => format!("required double {n};"),
            })
            .collect();
        let schema = Arc::new(parse_message_type(&format!(
            "message {name} {{ {fields} }}"
        ))?);
        let props = Arc::new(
            WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .build(),
        );
        let handle = file.try_clone()?;
        let writer = SerializedFileWriter::new(file, schema, props)?;
        let columns = columns
            .iter()
            .map(|(_, k)| match k {
                Kind::Text => Column::Text(Vec::new()),
                Kind::Int | Kind::UInt => Column::Int(Vec::new()),
                Kind::Int32 => Column::Int32(Vec::new()),
                Kind::Float => Column::Float(Vec::new()),
            })
            .collect();
        Ok(Self {
            writer,
            file: handle,
            columns,
            rows: 0,
        })
    }

    /// Appends a row. `values` must match the columns in number and kind: the
    /// export's callers build them from the same column list.
    pub fn push(&mut self, values: Vec<Value>) -> Result<(), parquet::errors::ParquetError> {
        if values.len() != self.columns.len() {
            return Err(parquet::errors::ParquetError::General(format!(
                "{} values for {} columns",
                values.len(),
                self.columns.len()
            )));
        }
        for (c, v) in self.columns.iter_mut().zip(values) {
            match (c, v) {
                (Column::Text(c), Value::Text(s)) => c.push(ByteArray::from(s.into_bytes())),
                (Column::Int(c), Value::Int(i)) => c.push(i),
                // The bits as they are: the schema says unsigned.
                (Column::Int(c), Value::UInt(u)) => c.push(u as i64),
                (Column::Int32(c), Value::Int32(i)) => c.push(i),
                (Column::Float(c), Value::Float(f)) => c.push(f),
                _ => {
                    return Err(parquet::errors::ParquetError::General(
                        "a value of the wrong kind for its column".into(),
                    ));
                }
            }
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS {
            self.flush_group()?;
        }
        Ok(())
    }

    fn flush_group(&mut self) -> Result<(), parquet::errors::ParquetError> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = self.writer.next_row_group()?;
        for column in &mut self.columns {
            let Some(mut w) = group.next_column()? else {
                break;
            };
            match column {
                Column::Text(v) => {
                    w.typed::<ByteArrayType>().write_batch(v, None, None)?;
                    v.clear();
                }
                Column::Int(v) => {
                    w.typed::<Int64Type>().write_batch(v, None, None)?;
                    v.clear();
                }
                Column::Int32(v) => {
                    w.typed::<Int32Type>().write_batch(v, None, None)?;
                    v.clear();
                }
                Column::Float(v) => {
                    w.typed::<DoubleType>().write_batch(v, None, None)?;
                    v.clear();
                }
            }
            w.close()?;
        }
        group.close()?;
        self.rows = 0;
        Ok(())
    }

    /// Writes the last row group and the footer; returns the file, written to the OS
    /// but not synced.
    pub fn finish(mut self) -> Result<File, parquet::errors::ParquetError> {
        self.flush_group()?;
        self.writer.close()?;
        Ok(self.file)
    }
}
