//! Tables for people (`table`), and `json` / `csv` for scripts.

use serde_json::{Map, Value};

/// How an operator command prints.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// A JSON array of objects.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

/// Rows under named columns.
pub struct Rows {
    /// Column names.
    pub columns: Vec<&'static str>,
    /// Cells, as text.
    pub rows: Vec<Vec<String>>,
}

impl Rows {
    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }

    fn table(&self) -> String {
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.columns[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(self.columns.clone());
        for row in &self.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
        out
    }

    fn json(&self) -> String {
        let objects: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let map: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| {
                        let value = v
                            .parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(v.as_str()));
                        ((*c).to_string(), value)
                    })
                    .collect();
                Value::Object(map)
            })
            .collect();
        serde_json::to_string_pretty(&objects).expect("serialises") + "\n"
    }

    fn csv(&self) -> String {
        let mut out = csv_line(&self.columns);
        for row in &self.rows {
            out.extend(csv_line(row));
        }
        String::from_utf8(out).expect("fields are text")
    }
}

/// One RFC 4180 record, with its line end: fields quoted where they need it.
pub fn csv_line<S: AsRef<str>>(row: &[S]) -> Vec<u8> {
    let mut writer = csv_core::Writer::new();
    let mut buf = vec![0; row.iter().map(|f| f.as_ref().len() * 2 + 3).sum::<usize>() + 16];
    let mut at = 0;
    for (i, field) in row.iter().enumerate() {
        if i > 0 {
            let (_, n) = writer.delimiter(&mut buf[at..]);
            at += n;
        }
        let (_, _, n) = writer.field(field.as_ref().as_bytes(), &mut buf[at..]);
        at += n;
    }
    let (_, n) = writer.finish(&mut buf[at..]);
    at += n;
    buf.truncate(at);
    buf.push(b'\n');
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_json_keeps_numbers() {
        let rows = Rows {
            columns: vec!["archivo", "registros"],
            rows: vec![vec!["a,b \"x\"".into(), "12".into()]],
        };
        assert_eq!(
            rows.render(Format::Csv),
            "archivo,registros\n\"a,b \"\"x\"\"\",12\n"
        );
        assert!(rows.render(Format::Json).contains("\"registros\": 12"));
        assert!(rows.render(Format::Table).starts_with("archivo"));
    }
}
