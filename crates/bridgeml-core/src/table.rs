//! Column-oriented tables read from CSV or Parquet, with numeric/categorical
//! type inference. Missing numeric values are `NaN`; missing categories `None`.

use std::path::Path;

use crate::{CoreError, Result};

/// Values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// Every non-missing value parsed as a number; missing values are `NaN`.
    Numeric(Vec<f64>),
    /// Anything else, as text; missing values are `None`.
    Categorical(Vec<Option<String>>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// A table of equally long named columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
}

/// Cells that mean "missing" in CSV files, as pandas reads them by default (a subset).
const MISSING: &[&str] = &["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"];

impl Table {
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.data.len())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Reads `.csv` or `.parquet`, chosen by extension.
    pub fn read(path: &Path) -> Result<Table> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("csv") => Self::read_csv(path),
            Some("parquet") | Some("pq") => Self::read_parquet(path),
            _ => Err(CoreError::UnsupportedFormat {
                path: path.to_path_buf(),
                expected: ".csv or .parquet".into(),
            }),
        }
    }

    /// Builds a table from text cells, inferring each column's type.
    pub fn from_text_columns(names: Vec<String>, cells: Vec<Vec<String>>) -> Table {
        let columns = names
            .into_iter()
            .zip(cells)
            .map(|(name, values)| Column {
                name,
                data: infer_column(values),
            })
            .collect();
        Table { columns }
    }

    pub fn read_csv(path: &Path) -> Result<Table> {
        let err = |reason: String| CoreError::Csv {
            path: path.to_path_buf(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .map_err(|e| match e.kind() {
                csv::ErrorKind::Io(_) => CoreError::io(path, std::io::Error::other(e.to_string())),
                _ => err(e.to_string()),
            })?;
        let names: Vec<String> = reader
            .headers()
            .map_err(|e| err(e.to_string()))?
            .iter()
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err(err("no header row".into()));
        }
        let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
        for (row_index, record) in reader.records().enumerate() {
            let record = record.map_err(|e| err(format!("row {}: {e}", row_index + 2)))?;
            if record.len() != names.len() {
                return Err(err(format!(
                    "row {} has {} fields, the header has {}",
                    row_index + 2,
                    record.len(),
                    names.len()
                )));
            }
            for (col, field) in cells.iter_mut().zip(record.iter()) {
                col.push(field.to_owned());
            }
        }
        Ok(Self::from_text_columns(names, cells))
    }

    pub fn read_parquet(path: &Path) -> Result<Table> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::Field;

        let err = |reason: String| CoreError::Parquet {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| err(e.to_string()))?;
        let schema = reader.metadata().file_metadata().schema_descr_ptr();
        let names: Vec<String> = schema
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        enum Acc {
            Unknown(usize),
            Num(Vec<f64>),
            Cat(Vec<Option<String>>),
        }
        let mut acc: Vec<Acc> = names.iter().map(|_| Acc::Unknown(0)).collect();
        let rows = reader.get_row_iter(None).map_err(|e| err(e.to_string()))?;
        for row in rows {
            let row = row.map_err(|e| err(e.to_string()))?;
            for (i, (_, field)) in row.get_column_iter().enumerate() {
                let numeric = match field {
                    Field::Null => None,
                    Field::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                    Field::Byte(v) => Some(f64::from(*v)),
                    Field::Short(v) => Some(f64::from(*v)),
                    Field::Int(v) => Some(f64::from(*v)),
                    Field::Long(v) => Some(*v as f64),
                    Field::UByte(v) => Some(f64::from(*v)),
                    Field::UShort(v) => Some(f64::from(*v)),
                    Field::UInt(v) => Some(f64::from(*v)),
                    Field::ULong(v) => Some(*v as f64),
                    Field::Float(v) => Some(f64::from(*v)),
                    Field::Double(v) => Some(*v),
                    _ => None,
                };
                let is_null = matches!(field, Field::Null);
                let slot = &mut acc[i];
                if let Acc::Unknown(nulls) = slot {
                    if is_null {
                        *nulls += 1;
                        continue;
                    }
                    let prior = *nulls;
                    *slot = if numeric.is_some() {
                        Acc::Num(vec![f64::NAN; prior])
                    } else {
                        Acc::Cat(vec![None; prior])
                    };
                }
                match slot {
                    Acc::Num(v) => match (numeric, is_null) {
                        (Some(x), _) => v.push(x),
                        (None, true) => v.push(f64::NAN),
                        (None, false) => {
                            return Err(err(format!("column {} mixes numbers and text", names[i])))
                        }
                    },
                    Acc::Cat(v) => v.push(if is_null {
                        None
                    } else {
                        Some(match field {
                            Field::Str(s) => s.clone(),
                            other => other.to_string(),
                        })
                    }),
                    Acc::Unknown(_) => unreachable!("resolved above"),
                }
            }
        }
        let columns = names
            .into_iter()
            .zip(acc)
            .map(|(name, a)| Column {
                name,
                data: match a {
                    Acc::Unknown(n) => ColumnData::Numeric(vec![f64::NAN; n]),
                    Acc::Num(v) => ColumnData::Numeric(v),
                    Acc::Cat(v) => ColumnData::Categorical(v),
                },
            })
            .collect();
        Ok(Table { columns })
    }
}

fn infer_column(values: Vec<String>) -> ColumnData {
    let is_missing = |s: &str| MISSING.contains(&s.trim());
    let all_numeric = values
        .iter()
        .all(|v| is_missing(v) || v.trim().parse::<f64>().is_ok());
    let any_present = values.iter().any(|v| !is_missing(v));
    if all_numeric && any_present {
        ColumnData::Numeric(
            values
                .iter()
                .map(|v| {
                    if is_missing(v) {
                        f64::NAN
                    } else {
                        v.trim().parse().expect("checked above")
                    }
                })
                .collect(),
        )
    } else if !any_present {
        ColumnData::Numeric(vec![f64::NAN; values.len()])
    } else {
        ColumnData::Categorical(
            values
                .into_iter()
                .map(|v| if is_missing(&v) { None } else { Some(v) })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_types_are_inferred_and_missing_values_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "age,city,score\n31,Paris,0.5\n,Lyon,NA\n40,,1e3\n").unwrap();
        let t = Table::read(&p).unwrap();
        assert_eq!(t.n_rows(), 3);
        match &t.column("age").unwrap().data {
            ColumnData::Numeric(v) => {
                assert_eq!(v[0], 31.0);
                assert!(v[1].is_nan());
                assert_eq!(v[2], 40.0);
            }
            other => panic!("age inferred as {other:?}"),
        }
        assert_eq!(
            t.column("city").unwrap().data,
            ColumnData::Categorical(vec![Some("Paris".into()), Some("Lyon".into()), None])
        );
        match &t.column("score").unwrap().data {
            ColumnData::Numeric(v) => assert_eq!(v[2], 1000.0),
            other => panic!("score inferred as {other:?}"),
        }
    }

    #[test]
    fn ragged_csv_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let e = Table::read(&p).unwrap_err().to_string();
        assert!(e.contains("bad.csv"), "{e}");
    }

    #[test]
    fn unknown_extension_is_rejected() {
        let e = Table::read(Path::new("data.xlsx")).unwrap_err().to_string();
        assert!(e.contains("data.xlsx") && e.contains(".csv"), "{e}");
    }
}
