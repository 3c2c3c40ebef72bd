//! The directory tables Switchyard keeps: who the users are, which projects and channels they
//! belong to, and the invitations they may watch. Backends keep them current through the
//! directory API; the real-time side only reads them to authorize. Beside them: the history of
//! rooms that keep one, and the notifications kept for users.

pub mod history;
pub mod invitation;
pub mod membership;
pub mod notification;
pub mod user;

pub mod prelude {
    pub use super::history::Entity as History;
    pub use super::invitation::Entity as Invitation;
    pub use super::membership::Entity as Membership;
    pub use super::notification::Entity as Notification;
    pub use super::user::Entity as User;
}
