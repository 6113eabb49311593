//! The alert vocabulary: what an alert is about ([`AlertKind`]) and which notice of its
//! life a message is ([`NoticeKind`]). Each value's text is written once, in a text
//! macro, as for the states (`super::state`); the table `alerts` checks the same list.

/// The stored text of each [`AlertKind`]: the one place it is written.
macro_rules! alert_kind_text {
    (ArchivoAusente) => {
        "ARCHIVO_AUSENTE"
    };
    (ArchivosDeMas) => {
        "ARCHIVOS_DE_MAS"
    };
    (VolumenAnomalo) => {
        "VOLUMEN_ANOMALO"
    };
    (TasaErrorAnomala) => {
        "TASA_ERROR_ANOMALA"
    };
    (FalloLayout) => {
        "FALLO_LAYOUT"
    };
    (FalloSistema) => {
        "FALLO_SISTEMA"
    };
    (ArchivoModificado) => {
        "ARCHIVO_MODIFICADO"
    };
    (RespaldoFaltante) => {
        "RESPALDO_FALTANTE"
    };
    (OrigenSinPerformer) => {
        "ORIGEN_SIN_PERFORMER"
    };
    (NocheSinDrenar) => {
        "NOCHE_SIN_DRENAR"
    };
    (NocheBloqueada) => {
        "NOCHE_BLOQUEADA"
    };
    (ArchivoZipFallido) => {
        "ARCHIVO_ZIP_FALLIDO"
    };
}

/// An [`AlertKind`] as an SQL literal: `sql_alert_kind!(FalloLayout)` is `'FALLO_LAYOUT'`.
macro_rules! sql_alert_kind {
    ($v:ident) => {
        concat!("'", $crate::types::alert::alert_kind_text!($v), "'")
    };
}
pub(crate) use alert_kind_text;
pub(crate) use sql_alert_kind;

/// [`AlertKind`]s as an SQL list: `sql_alert_kinds!(FalloLayout, FalloSistema)`.
macro_rules! sql_alert_kinds {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        concat!("(", $crate::types::alert::sql_alert_kind!($first)
                $(, ", ", $crate::types::alert::sql_alert_kind!($rest))*, ")")
    };
}
pub(crate) use sql_alert_kinds;

use super::state::UnknownState;

super::state::states! {alert_kind_text,
    /// `alerts.kind`: what went wrong, and the `event` of its webhook notice.
    AlertKind {
        /// Fewer files than `expect.<feed>.files.min` were delivered for a day by its `due_by`.
        ArchivoAusente,
        /// More files than `expect.<feed>.files.max` were delivered for a day.
        ArchivosDeMas,
        /// A file's valid rows are far from its feed's history.
        VolumenAnomalo,
        /// A file's error rate is far from its feed's history.
        TasaErrorAnomala,
        /// A file failed the layout check.
        FalloLayout,
        /// A file failed for good (tier 3).
        FalloSistema,
        /// A file changed at the origin after it was read.
        ArchivoModificado,
        /// A loaded file's backup could not be made: nothing at the origin was deleted.
        RespaldoFaltante,
        /// A night's open items can be claimed by no live performer.
        OrigenSinPerformer,
        /// A night did not drain before the drain timeout.
        NocheSinDrenar,
        /// A night found the dispatcher's lock held longer than the drain timeout.
        NocheBloqueada,
        /// A day's zip could not be written or verified.
        ArchivoZipFallido,
    }
}

impl AlertKind {
    /// About one file (it has a `bitacora_control` row).
    pub fn is_about_a_file(self) -> bool {
        matches!(
            self,
            Self::FalloLayout
                | Self::FalloSistema
                | Self::ArchivoModificado
                | Self::RespaldoFaltante
                | Self::VolumenAnomalo
                | Self::TasaErrorAnomala
        )
    }
}

/// The stored text of each [`NoticeKind`].
macro_rules! notice_kind_text {
    (Alerta) => {
        "ALERTA"
    };
    (Recordatorio) => {
        "RECORDATORIO"
    };
    (Recuperado) => {
        "RECUPERADO"
    };
}

super::state::states! {notice_kind_text,
    /// `alert_notices.what`: which notice of an alert's life a message is.
    NoticeKind {
        /// The alert opened.
        Alerta,
        /// Still open, `alerts.repeat_every` after the last notice.
        Recordatorio,
        /// It is over: the check that raised it passed.
        Recuperado,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_text_and_make_sql_lists() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(*k));
        }
        assert_eq!(
            sql_alert_kinds!(FalloLayout, FalloSistema),
            "('FALLO_LAYOUT', 'FALLO_SISTEMA')"
        );
        assert_eq!(NoticeKind::Recuperado.as_str(), "RECUPERADO");
    }

    /// The migration's check lists every kind (and nothing else).
    #[test]
    fn the_table_accepts_exactly_these_kinds() {
        let migration = include_str!("../../../sql/migrations/0013_alerts.sql");
        let check = migration
            .split("CONSTRAINT alerts_kind_known CHECK (kind IN (")
            .nth(1)
            .and_then(|rest| rest.split("))").next())
            .expect("the check of alerts.kind");
        let listed: Vec<&str> = check
            .split(',')
            .map(|s| s.trim().trim_matches('\''))
            .collect();
        let all: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(listed, all);
    }
}
