//! The listing and lookup statements use their indexes on PostgreSQL: with 100k links in the
//! table, a user's page (first page, next page by cursor, filtered by tag) is read through
//! `links_owner_created`, never by a sequential scan of `links`, and a lookup by code
//! (one code or several) through the primary key; a page after a cursor seeks to the cursor's code within its
//! time. The plans are of the store's own statements.

mod common;

use common::postgres::TestDb;
use snip::store::postgres::PgStore;
use snip::store::{LinkCursor, LinkOrder, LinkQuery, PageRequest, sql};
use sqlx::{AssertSqlSafe, Connection};

const FILL: &str = "
INSERT INTO users (email, name, role, created_at, updated_at)
  SELECT 'u' || i || '@example.com', '', 'member', 0, 0 FROM generate_series(1, 1000) AS i;
INSERT INTO links (code, url, owner_id, created_at, updated_at)
  SELECT 'c' || i, 'https://example.com/' || i, (i % 1000) + 1, 1800000000000 + i, 0
  FROM generate_series(1, 100000) AS i;
INSERT INTO link_tags (code, tag)
  SELECT 'c' || i, 't' || (i % 50) FROM generate_series(1, 100000) AS i;
INSERT INTO clicks_by_hour (code, hour, clicks)
  SELECT 'c' || i, 0, 1 FROM generate_series(1, 100000, 3) AS i;
ANALYZE;
";

#[tokio::test]
async fn a_users_pages_are_read_by_index() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = PgStore::connect(&db.url).await.unwrap();
    let mut conn = sqlx::postgres::PgConnection::connect(&db.url)
        .await
        .unwrap();
    sqlx::raw_sql(FILL).execute(&mut conn).await.unwrap();

    let first = LinkQuery {
        owner_id: 7,
        tag: None,
        q: None,
        url: None,
        order: LinkOrder::Newest,
        limit: 20,
        page: PageRequest::After(None),
    };
    let next = LinkQuery {
        page: PageRequest::After(Some(LinkCursor {
            created_at: 1_800_000_050_006,
            code: "c50006".into(),
        })),
        ..first.clone()
    };
    let tagged = LinkQuery {
        tag: Some("t6".into()),
        ..first.clone()
    };
    for (name, query) in [
        ("first page", &first),
        ("cursor page", &next),
        ("tag filter", &tagged),
    ] {
        let plan = store.explain_listing(query).await.unwrap();
        assert!(
            !plan.contains("Seq Scan on links"),
            "{name} scans links:\n{plan}"
        );
        assert!(
            plan.contains("links_owner_created"),
            "{name} ignores the index:\n{plan}"
        );
    }
    // After a cursor, the links of the cursor's own time are entered at its code, not
    // stepped over from the first link of that time.
    let plan = store.explain_listing(&next).await.unwrap();
    assert!(
        plan.lines()
            .any(|l| l.contains("Index Cond") && l.contains("code >")),
        "the cursor page does not seek to the cursor's code:\n{plan}"
    );

    // The store's own lookup statements, as it runs them.
    for (name, statement) in [
        ("redirect lookup", sql::REDIRECT_BY_CODE),
        ("link lookup", sql::LINK_BY_CODE),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!("EXPLAIN {statement}")))
            .bind("c123")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(
            plan.contains("Index Scan using links_pkey"),
            "{name} ignores the primary key:\n{plan}"
        );
        assert!(!plan.contains("Seq Scan"), "{name} scans a table:\n{plan}");
    }
    // Lookups read together: one array of codes, still by the primary key.
    let plan: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "EXPLAIN {}",
        sql::REDIRECTS_BY_CODES
    )))
    .bind(vec!["c123", "c4567", "c89"])
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("links_pkey") && !plan.contains("Seq Scan"),
        "batched redirect lookups ignore the primary key:\n{plan}"
    );
}
