//! The two state columns, one vocabulary: `work_items.state` ([`ItemState`]) and
//! `bitacora_control.estatus` ([`AuditStatus`]). Their allowed pairs and transitions are
//! `docs/state-machine.md`.
//!
//! Each value's stored text is written once, in a text macro (`item_state_text!`,
//! `audit_status_text!`); the enums' `as_str` and the SQL literal macros are built from
//! it: `sql_state!(Running)` is `'running'`, `sql_status!(FalloSistema)` is
//! `'FALLO_SISTEMA'`, `sql_statuses!(Completado, Duplicado)` is
//! `('COMPLETADO', 'DUPLICADO')`. So SQL text never spells a status by hand, a
//! misspelt one does not compile, and the named lists below are tested against the
//! enums' predicates.

/// The stored text of each [`ItemState`]: the one place it is written.
macro_rules! item_state_text {
    (Pending) => {
        "pending"
    };
    (Running) => {
        "running"
    };
    (Done) => {
        "done"
    };
    (Failed) => {
        "failed"
    };
}
pub(crate) use item_state_text;

/// The stored text of each [`AuditStatus`]: the one place it is written.
macro_rules! audit_status_text {
    (Pendiente) => {
        "PENDIENTE"
    };
    (EnProceso) => {
        "EN_PROCESO"
    };
    (Completado) => {
        "COMPLETADO"
    };
    (CompletadoConErrores) => {
        "COMPLETADO_CON_ERRORES"
    };
    (Duplicado) => {
        "DUPLICADO"
    };
    (FalloLayout) => {
        "FALLO_LAYOUT"
    };
    (FalloSistema) => {
        "FALLO_SISTEMA"
    };
}
pub(crate) use audit_status_text;

/// The stored text of each [`SetAsideReason`] (`set_aside_files.reason`).
macro_rules! set_aside_reason_text {
    (Changed) => {
        "changed"
    };
    (DeleteRefused) => {
        "delete_refused"
    };
}

/// The stored text of each [`Resolution`] (`set_aside_files.resolution`).
macro_rules! resolution_text {
    (Loaded) => {
        "loaded"
    };
    (Discarded) => {
        "discarded"
    };
    (Gone) => {
        "gone"
    };
}

/// An [`ItemState`] as an SQL literal: `sql_state!(Running)` is `'running'`.
macro_rules! sql_state {
    ($v:ident) => {
        concat!("'", $crate::types::state::item_state_text!($v), "'")
    };
}
pub(crate) use sql_state;

/// An [`AuditStatus`] as an SQL literal: `sql_status!(Duplicado)` is `'DUPLICADO'`.
macro_rules! sql_status {
    ($v:ident) => {
        concat!("'", $crate::types::state::audit_status_text!($v), "'")
    };
}
pub(crate) use sql_status;

/// [`ItemState`]s as an SQL list: `sql_states!(Pending, Running)` is `('pending', 'running')`.
macro_rules! sql_states {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        concat!("(", $crate::types::state::sql_state!($first)
                $(, ", ", $crate::types::state::sql_state!($rest))*, ")")
    };
}
pub(crate) use sql_states;

/// [`AuditStatus`]es as an SQL list: `sql_statuses!(Completado, Duplicado)`.
macro_rules! sql_statuses {
    ($first:ident $(, $rest:ident)* $(,)?) => {
        concat!("(", $crate::types::state::sql_status!($first)
                $(, ", ", $crate::types::state::sql_status!($rest))*, ")")
    };
}
pub(crate) use sql_statuses;

/// Declares a state enum whose stored text comes from the text macro `$text`.
macro_rules! states {
    ($text:ident, $(#[$meta:meta])* $name:ident {
        $($(#[$vmeta:meta])* $variant:ident,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order operators read them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value as stored.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text!($variant),)+
                }
            }

            /// Parses a stored value.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<Self, UnknownState> {
                Self::parse(text).ok_or_else(|| UnknownState {
                    column: stringify!($name),
                    value: text.to_string(),
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownState;

            fn try_from(text: String) -> Result<Self, UnknownState> {
                text.parse()
            }
        }
    };
}

pub(crate) use states;

/// A stored state that no enum value names (a row written by something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{column}: unknown value `{value}`")]
pub struct UnknownState {
    /// The enum it was read as.
    pub column: &'static str,
    /// What was stored.
    pub value: String,
}

states! {item_state_text,
    /// `work_items.state`: where an item is in the queue.
    ItemState {
        /// Waiting to be claimed (at `run_at`).
        Pending,
        /// Claimed under a lease.
        Running,
        /// Loaded or duplicate: nothing more to do.
        Done,
        /// Layout or system failure: waits for an operator (or tier 4).
        Failed,
    }
}

impl ItemState {
    /// Whether the item may still change without an operator.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

states! {audit_status_text,
    /// `bitacora_control.estatus`: what became of a received file.
    AuditStatus {
        /// Enqueued, not yet claimed (or handed back).
        Pendiente,
        /// An attempt is working on it.
        EnProceso,
        /// Loaded, every record valid.
        Completado,
        /// Loaded, some records rejected.
        CompletadoConErrores,
        /// Same content as a file already loaded: nothing loaded.
        Duplicado,
        /// Wrong layout: nothing loaded, waits for an operator.
        FalloLayout,
        /// Retries exhausted or pointless: waits for tier 4 or an operator.
        FalloSistema,
    }
}

impl AuditStatus {
    /// Decided by a committed attempt: what is left is the backup and the delete.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Completado | Self::CompletadoConErrores | Self::Duplicado | Self::FalloLayout
        )
    }

    /// The file's rows are in the tables (content counts as "already loaded").
    pub fn is_loaded(self) -> bool {
        matches!(self, Self::Completado | Self::CompletadoConErrores)
    }

    /// Waits in quarantine for an operator once its item failed.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::FalloLayout | Self::FalloSistema)
    }

    /// Its content is in the tables, by this load or an earlier one: a later row of a
    /// failed file's name with such a status resolves the failure.
    pub fn resolves_failure(self) -> bool {
        self.is_final() && !self.is_failure()
    }
}

states! {set_aside_reason_text,
    /// `set_aside_files.reason`: why a file stays at the origin for an operator.
    SetAsideReason {
        /// Written to after it was read, and it still begins with what was loaded.
        Changed,
        /// Loaded and backed up; the origin refuses to delete it.
        DeleteRefused,
    }
}

states! {resolution_text,
    /// `set_aside_files.resolution`: how a file set aside at the origin was resolved.
    Resolution {
        /// An operator had it loaded as new content (a new item took it over).
        Loaded,
        /// An operator moved it to `quarantine/discarded/`.
        Discarded,
        /// It is no longer at the origin.
        Gone,
    }
}

/// The open states, as an SQL list: [`ItemState::is_open`].
macro_rules! open_states {
    () => {
        $crate::types::state::sql_states!(Pending, Running)
    };
}
pub(crate) use open_states;

/// The statuses no attempt committed, as an SQL list: [`AuditStatus::is_final`] is false.
macro_rules! uncommitted_statuses {
    () => {
        $crate::types::state::sql_statuses!(Pendiente, EnProceso, FalloSistema)
    };
}
pub(crate) use uncommitted_statuses;

/// The statuses a committed attempt decided, as an SQL list: [`AuditStatus::is_final`].
macro_rules! committed_statuses {
    () => {
        $crate::types::state::sql_statuses!(
            Completado,
            CompletadoConErrores,
            Duplicado,
            FalloLayout
        )
    };
}
pub(crate) use committed_statuses;

/// The statuses whose rows are in the tables, as an SQL list: [`AuditStatus::is_loaded`].
macro_rules! loaded_statuses {
    () => {
        $crate::types::state::sql_statuses!(Completado, CompletadoConErrores)
    };
}
pub(crate) use loaded_statuses;

/// The statuses that wait in quarantine, as an SQL list: [`AuditStatus::is_failure`].
macro_rules! failure_statuses {
    () => {
        $crate::types::state::sql_statuses!(FalloLayout, FalloSistema)
    };
}
pub(crate) use failure_statuses;

/// The statuses that resolve an earlier failure of the same file, as an SQL list:
/// [`AuditStatus::resolves_failure`].
macro_rules! resolving_statuses {
    () => {
        $crate::types::state::sql_statuses!(Completado, CompletadoConErrores, Duplicado)
    };
}
pub(crate) use resolving_statuses;

/// The final state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// Loaded or duplicate: nothing more to do.
    Done,
    /// Layout or system failure: waits for an operator (or tier 4).
    Failed,
}

impl From<Final> for ItemState {
    fn from(f: Final) -> Self {
        match f {
            Final::Done => ItemState::Done,
            Final::Failed => ItemState::Failed,
        }
    }
}

/// A final status that loads nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unloaded {
    /// The layout is wrong (never retried automatically).
    Layout,
    /// The content was loaded before: counts are zero, so invariant 1 holds for it too.
    Duplicate,
}

impl From<Unloaded> for AuditStatus {
    fn from(u: Unloaded) -> Self {
        match u {
            Unloaded::Layout => AuditStatus::FalloLayout,
            Unloaded::Duplicate => AuditStatus::Duplicado,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_list_of<T: Copy + std::fmt::Display>(all: &[T], keep: impl Fn(T) -> bool) -> String {
        let quoted: Vec<String> = all
            .iter()
            .copied()
            .filter(|v| keep(*v))
            .map(|v| format!("'{v}'"))
            .collect();
        format!("({})", quoted.join(", "))
    }

    /// The SQL status lists are the enums' predicates, written as SQL.
    #[test]
    fn sql_lists_are_the_enums_predicates() {
        assert_eq!(
            open_states!(),
            sql_list_of(ItemState::ALL, ItemState::is_open)
        );
        assert_eq!(
            uncommitted_statuses!(),
            sql_list_of(AuditStatus::ALL, |s| !s.is_final())
        );
        assert_eq!(
            committed_statuses!(),
            sql_list_of(AuditStatus::ALL, AuditStatus::is_final)
        );
        assert_eq!(
            loaded_statuses!(),
            sql_list_of(AuditStatus::ALL, AuditStatus::is_loaded)
        );
        assert_eq!(
            failure_statuses!(),
            sql_list_of(AuditStatus::ALL, AuditStatus::is_failure)
        );
        assert_eq!(
            resolving_statuses!(),
            sql_list_of(AuditStatus::ALL, AuditStatus::resolves_failure)
        );
    }

    #[test]
    fn literals_and_parsing_follow_the_stored_text() {
        assert_eq!(sql_state!(Running), "'running'");
        assert_eq!(sql_status!(FalloSistema), "'FALLO_SISTEMA'");
        for s in ItemState::ALL {
            assert_eq!(s.as_str().parse::<ItemState>(), Ok(*s));
        }
        for s in AuditStatus::ALL {
            assert_eq!(AuditStatus::try_from(s.to_string()), Ok(*s));
        }
        assert!("RUNNING".parse::<ItemState>().is_err());
    }
}
