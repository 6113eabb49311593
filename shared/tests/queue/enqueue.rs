//! `enqueue`: which listed files become items, and their audit rows.

use crate::factory::Item;
use crate::testdb::TestDb;
use shared::store::attempt;
use shared::types::AuditStatus::{self, *};
use shared::types::ItemState;

/// An item already in the queue: its state, audit status, and seconds it was last
/// written after the listing (negative: before).
type Existing = (ItemState, AuditStatus, f64);

/// The skip rules, one case per row: what the queue already holds for the listed file's
/// identity (state, audit status, last written before or after the listing), and whether
/// listing it again makes a new item.
#[tokio::test]
async fn a_listed_file_is_enqueued_unless_an_item_already_took_it() {
    let t = TestDb::new().await;
    let listed_at = chrono::Utc::now();
    let cases: [(&str, Option<Existing>, bool); 9] = [
        ("never_seen", None, true),
        (
            "open_pending",
            Some((ItemState::Pending, Pendiente, -60.0)),
            false,
        ),
        (
            "open_running",
            Some((ItemState::Running, EnProceso, -60.0)),
            false,
        ),
        // The listing saw the file that item took (it finished while the listing ran).
        (
            "done_after_listing",
            Some((ItemState::Done, Completado, 60.0)),
            false,
        ),
        (
            "layout_after_listing",
            Some((ItemState::Failed, FalloLayout, 60.0)),
            false,
        ),
        // The origin keeps a FALLO_SISTEMA file: tier 4 or an operator takes it up.
        (
            "system_failure_before_listing",
            Some((ItemState::Failed, FalloSistema, -60.0)),
            false,
        ),
        // A finished item took its file off the listed name: what is there now is new content.
        (
            "done_before_listing",
            Some((ItemState::Done, Completado, -60.0)),
            true,
        ),
        (
            "duplicate_before_listing",
            Some((ItemState::Done, Duplicado, -60.0)),
            true,
        ),
        (
            "layout_before_listing",
            Some((ItemState::Failed, FalloLayout, -60.0)),
            true,
        ),
    ];
    for (case, existing, enqueued) in cases {
        let item = Item::new(case);
        if let Some((state, audit, updated)) = existing {
            item.clone()
                .state(state, audit)
                .updated(updated)
                .insert(&t)
                .await;
        }
        let ids = attempt::enqueue(&t.db, None, &[item.listed()], 3, listed_at)
            .await
            .unwrap();
        assert_eq!(ids.len(), usize::from(enqueued), "{case}");
        if let [id] = ids[..] {
            assert_eq!(
                t.item(id, "state").await.as_deref(),
                Some("pending"),
                "{case}"
            );
            assert_eq!(
                t.audit(id, "estatus").await.as_deref(),
                Some("PENDIENTE"),
                "{case}"
            );
            assert_eq!(
                t.audit(id, "archivo").await.as_deref(),
                Some(case),
                "{case}"
            );
        }
    }
}

#[tokio::test]
async fn one_listing_twice_enqueues_each_file_once() {
    let t = TestDb::new().await;
    let files = [Item::new("a").listed(), Item::new("b").listed()];
    let first = attempt::enqueue(&t.db, None, &files, 3, chrono::Utc::now())
        .await
        .unwrap();
    let second = attempt::enqueue(&t.db, None, &files, 3, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (2, 0));
    // The same name with another size while its item is still open: that item takes
    // whatever the name holds when it claims it (and relists it), so no second item.
    let changed = attempt::enqueue(
        &t.db,
        None,
        &[Item::new("a").size(101).listed()],
        3,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(changed.len(), 0, "one open item per listed path");
}
