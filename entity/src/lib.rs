//! The directory tables Switchyard keeps: who the users are, which projects and channels they
//! belong to, and the invitations they may watch. Backends keep them current through the
//! directory API; the real-time side only reads them to authorize.

pub mod invitation;
pub mod membership;
pub mod user;

pub mod prelude {
    pub use super::invitation::Entity as Invitation;
    pub use super::membership::Entity as Membership;
    pub use super::user::Entity as User;
}
