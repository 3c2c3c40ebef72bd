//! Schema migrations, applied at every start (and by `switchyard migrate`).

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_directory;
mod m20261123_000002_create_history;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_directory::Migration),
            Box::new(m20261123_000002_create_history::Migration),
        ]
    }
}
