//! Room history (offsets per room) and the notifications kept for users.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(History::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(History::Room).string().not_null())
                    .col(ColumnDef::new(History::Offset).big_integer().not_null())
                    .col(ColumnDef::new(History::PublicationId).string().not_null())
                    .col(ColumnDef::new(History::Event).string().not_null())
                    .col(ColumnDef::new(History::Data).text().not_null())
                    .col(ColumnDef::new(History::PublishedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(History::Room).col(History::Offset))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_history_room_published")
                    .table(History::Table)
                    .col(History::Room)
                    .col(History::PublishedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Notifications::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Notifications::UserId).string().not_null())
                    .col(ColumnDef::new(Notifications::NotificationId).string().not_null())
                    .col(ColumnDef::new(Notifications::Data).text().not_null())
                    .col(ColumnDef::new(Notifications::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Notifications::DeliveredAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Notifications::ReadAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_user")
                    .table(Notifications::Table)
                    .col(Notifications::UserId)
                    .col(Notifications::Seq)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Notifications::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(History::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum History {
    Table,
    Room,
    Offset,
    PublicationId,
    Event,
    Data,
    PublishedAt,
}

#[derive(DeriveIden)]
enum Notifications {
    Table,
    Seq,
    UserId,
    NotificationId,
    Data,
    CreatedAt,
    DeliveredAt,
    ReadAt,
}
