//! The directory: users, project/channel memberships, invitations.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Users::Id).string().not_null().primary_key())
                    .col(ColumnDef::new(Users::Email).string().null())
                    .col(ColumnDef::new(Users::EmailVerified).boolean().not_null().default(false))
                    .col(ColumnDef::new(Users::OrganizationId).string().null())
                    .col(ColumnDef::new(Users::TenantId).string().null())
                    .col(ColumnDef::new(Users::Role).string().null())
                    .col(ColumnDef::new(Users::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Users::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_users_organization_role")
                    .table(Users::Table)
                    .col(Users::OrganizationId)
                    .col(Users::Role)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Memberships::TenantId).string().not_null())
                    .col(ColumnDef::new(Memberships::Kind).string().not_null())
                    .col(ColumnDef::new(Memberships::ResourceId).string().not_null())
                    .col(ColumnDef::new(Memberships::UserId).string().not_null())
                    .col(ColumnDef::new(Memberships::Role).string().null())
                    .col(ColumnDef::new(Memberships::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(Memberships::TenantId)
                            .col(Memberships::Kind)
                            .col(Memberships::ResourceId)
                            .col(Memberships::UserId),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Invitations::Id).string().not_null().primary_key())
                    .col(ColumnDef::new(Invitations::OrganizationId).string().null())
                    .col(ColumnDef::new(Invitations::Email).string().null())
                    .col(ColumnDef::new(Invitations::Status).string().not_null())
                    .col(ColumnDef::new(Invitations::ExpiresAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Invitations::UsedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Invitations::RevokedAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Invitations::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Invitations::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_status_expires")
                    .table(Invitations::Table)
                    .col(Invitations::Status)
                    .col(Invitations::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Invitations::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Memberships::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    EmailVerified,
    OrganizationId,
    TenantId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    TenantId,
    Kind,
    ResourceId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Invitations {
    Table,
    Id,
    OrganizationId,
    Email,
    Status,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
    UpdatedAt,
}
