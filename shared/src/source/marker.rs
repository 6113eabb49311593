//! `source.done_marker`: the file a careful sender writes once a file is complete
//! (Camel's `doneFileName`). `{name}` stands for the file's name, `{stem}` for it
//! without its last extension: `"{name}.done"` marks `report_1.txt` with
//! `report_1.txt.done`, `"{stem}.ok"` with `report_1.ok`.

use serde::Deserialize;

/// A parsed `source.done_marker` template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DoneMarker {
    template: String,
}

impl DoneMarker {
    /// The marker of file `name`.
    pub fn marker_of(&self, name: &str) -> String {
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        self.template
            .replace("{name}", name)
            .replace("{stem}", stem)
    }

    /// The template as configured.
    pub fn as_str(&self) -> &str {
        &self.template
    }
}

impl TryFrom<String> for DoneMarker {
    type Error = String;

    fn try_from(template: String) -> Result<Self, String> {
        let rest = template.replace("{name}", "").replace("{stem}", "");
        if rest.len() == template.len() {
            return Err(format!(
                "`{template}` names no file: use {{name}} or {{stem}} (e.g. \"{{name}}.done\")"
            ));
        }
        if rest.contains(['{', '}']) {
            return Err(format!(
                "`{template}`: only {{name}} and {{stem}} may stand in braces"
            ));
        }
        if rest.contains(['/', '\\', '\0']) {
            return Err(format!(
                "`{template}`: the marker lies beside its file (no path separator)"
            ));
        }
        if rest.is_empty() && !template.contains("{stem}") {
            return Err(format!("`{template}` would be the file itself"));
        }
        Ok(Self { template })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(t: &str) -> Result<DoneMarker, String> {
        DoneMarker::try_from(t.to_string())
    }

    #[test]
    fn names_and_stems_make_the_marker() {
        assert_eq!(
            marker("{name}.done").unwrap().marker_of("report_1.txt"),
            "report_1.txt.done"
        );
        assert_eq!(
            marker("{stem}.ok").unwrap().marker_of("report_1.txt"),
            "report_1.ok"
        );
        assert_eq!(
            marker("{stem}.ok").unwrap().marker_of("report_1"),
            "report_1.ok"
        );
        assert_eq!(
            marker("ready-{name}").unwrap().marker_of("a.txt"),
            "ready-a.txt"
        );
    }

    #[test]
    fn a_template_that_names_no_file_or_another_place_is_refused() {
        for bad in [
            "done",
            "{name}",
            "{file}.done",
            "../{name}.done",
            "{name}/ok",
        ] {
            assert!(marker(bad).is_err(), "{bad}");
        }
    }
}
