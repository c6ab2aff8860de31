//! PostgreSQL for tests: a fresh database per test on the shared server at 127.0.0.1:5432,
//! dropped when the test ends. Without the server a test is skipped with a loud message on
//! a laptop, and fails in CI.

use std::net::TcpStream;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The maintenance database tests connect to in order to create their own.
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of the test's own. Dropped (forcibly) with the value.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    name: String,
}

impl TestDb {
    /// Creates a fresh, uniquely named database; `None` when PostgreSQL is not running
    /// and this is not CI.
    pub async fn create() -> Option<TestDb> {
        if TcpStream::connect_timeout(&"127.0.0.1:5432".parse().unwrap(), Duration::from_secs(1))
            .is_err()
        {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is not running on 127.0.0.1:5432, and CI must run its tests");
            }
            eprintln!("\n!!! SKIPPED: PostgreSQL is not running on 127.0.0.1:5432 !!!\n");
            return None;
        }
        let n: u64 = rand::random();
        let name = format!("snip_test_{n:016x}");
        let mut admin = PgConnection::connect(ADMIN_URL)
            .await
            .expect("connect to postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        Some(TestDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async code: use a runtime of its own on a plain thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(ADMIN_URL).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// `n` fresh databases; `None` when PostgreSQL is not running and this is not CI.
pub async fn create_many(n: usize) -> Option<Vec<TestDb>> {
    let mut dbs = Vec::with_capacity(n);
    for _ in 0..n {
        dbs.push(TestDb::create().await?);
    }
    Some(dbs)
}

/// The configuration of `dbs` as shards `shard-0`, `shard-1`, … (the first holds users).
pub fn shard_configs(dbs: &[TestDb]) -> Vec<snip::config::ShardConfig> {
    dbs.iter()
        .enumerate()
        .map(|(i, db)| snip::config::ShardConfig {
            url: db.url.clone(),
            name: Some(format!("shard-{i}")),
            vnodes: None,
        })
        .collect()
}
