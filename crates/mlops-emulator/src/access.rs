//! Group membership, admin rights, token-usage rights and the revocation of tokens.

use std::collections::BTreeSet;

use crate::model::{AclEntry, PrincipalId, Workspace};

/// Token permission that lets a principal create and use tokens.
pub(crate) const CAN_USE: &str = "CAN_USE";

/// Permission level that only the `admins` group has on tokens.
pub(crate) const CAN_MANAGE: &str = "CAN_MANAGE";

impl Workspace {
    /// Returns whether the principal exists in the workspace.
    pub fn principal_exists(&self, principal: PrincipalId) -> bool {
        match principal {
            PrincipalId::User(id) => self.users.contains_key(&id),
            PrincipalId::ServicePrincipal(id) => self.service_principals.contains_key(&id),
            PrincipalId::Group(id) => self.groups.contains_key(&id),
        }
    }

    /// Returns whether the principal exists and is active; groups are always active.
    pub fn principal_active(&self, principal: PrincipalId) -> bool {
        match principal {
            PrincipalId::User(id) => self.users.get(&id).is_some_and(|user| user.active),
            PrincipalId::ServicePrincipal(id) => {
                self.service_principals.get(&id).is_some_and(|sp| sp.active)
            }
            PrincipalId::Group(id) => self.groups.contains_key(&id),
        }
    }

    /// Finds the principal with this numeric id, whatever its kind.
    pub fn principal_by_id(&self, id: u64) -> Option<PrincipalId> {
        if self.users.contains_key(&id) {
            Some(PrincipalId::User(id))
        } else if self.service_principals.contains_key(&id) {
            Some(PrincipalId::ServicePrincipal(id))
        } else if self.groups.contains_key(&id) {
            Some(PrincipalId::Group(id))
        } else {
            None
        }
    }

    /// Returns the name that ACLs use for the principal: a user's userName, a service principal's
    /// applicationId or a group's displayName.
    pub fn principal_name(&self, principal: PrincipalId) -> Option<&str> {
        match principal {
            PrincipalId::User(id) => self.users.get(&id).map(|user| user.user_name.as_str()),
            PrincipalId::ServicePrincipal(id) => self
                .service_principals
                .get(&id)
                .map(|sp| sp.application_id.as_str()),
            PrincipalId::Group(id) => self
                .groups
                .get(&id)
                .map(|group| group.display_name.as_str()),
        }
    }

    /// Returns the principal's display name.
    pub fn principal_display_name(&self, principal: PrincipalId) -> Option<&str> {
        match principal {
            PrincipalId::User(id) => self.users.get(&id).map(|user| user.display_name.as_str()),
            PrincipalId::ServicePrincipal(id) => self
                .service_principals
                .get(&id)
                .map(|sp| sp.display_name.as_str()),
            PrincipalId::Group(id) => self
                .groups
                .get(&id)
                .map(|group| group.display_name.as_str()),
        }
    }

    /// Returns the ids of the groups that directly contain the principal, without the implicit
    /// `users` group.
    pub fn direct_group_ids(&self, principal: PrincipalId) -> Vec<u64> {
        self.groups
            .values()
            .filter(|group| group.members.contains(&principal))
            .map(|group| group.id)
            .collect()
    }

    /// Returns the ids of every group that contains the principal directly or through nested
    /// groups. Users and service principals are always in `users`.
    pub fn group_ids_of(&self, principal: PrincipalId) -> BTreeSet<u64> {
        let mut found = BTreeSet::new();
        if !matches!(principal, PrincipalId::Group(_)) {
            found.insert(self.users_group_id);
        }

        let mut pending = vec![principal];
        while let Some(member) = pending.pop() {
            for group_id in self.direct_group_ids(member) {
                if found.insert(group_id) {
                    pending.push(PrincipalId::Group(group_id));
                }
            }
        }
        found
    }

    /// Returns whether the principal is active and a member of `admins`.
    pub fn is_admin(&self, principal: PrincipalId) -> bool {
        self.principal_active(principal)
            && self.group_ids_of(principal).contains(&self.admins_group_id)
    }

    /// Returns the levels that an ACL grants to the principal, directly or through its groups.
    pub fn acl_levels<'a>(&self, acl: &'a [AclEntry], principal: PrincipalId) -> Vec<&'a str> {
        let groups = self.group_ids_of(principal);
        acl.iter()
            .filter(|entry| match entry.principal {
                PrincipalId::Group(id) => id == principal.id() || groups.contains(&id),
                other => other == principal,
            })
            .map(|entry| entry.level.as_str())
            .collect()
    }

    /// Returns whether the principal may create and use tokens: it is active and an admin, or it
    /// has `CAN_USE` on tokens directly or through a group (`users` included).
    pub fn may_use_tokens(&self, principal: PrincipalId) -> bool {
        if !self.principal_active(principal) {
            return false;
        }
        if self.is_admin(principal) {
            return true;
        }
        let Some(acl) = &self.token_permissions else {
            return false;
        };
        self.acl_levels(acl, principal)
            .iter()
            .any(|level| *level == CAN_USE || *level == CAN_MANAGE)
    }

    /// Deletes every token whose owner may no longer use tokens, and returns the deleted token ids.
    ///
    /// Also deletes the OAuth access tokens of inactive or deleted principals and the OAuth
    /// clients of deleted ones.
    pub fn revoke_unentitled_tokens(&mut self) -> Vec<String> {
        let revoked: Vec<String> = self
            .tokens
            .values()
            .filter(|token| !self.may_use_tokens(token.owner))
            .map(|token| token.token_id.clone())
            .collect();
        for token_id in &revoked {
            self.tokens.remove(token_id);
            tracing::info!(workspace = %self.name, token_id = %token_id, "revoked token of a principal without token permission");
        }

        let inactive_owners: BTreeSet<PrincipalId> = self
            .access_tokens
            .values()
            .map(|token| token.owner)
            .filter(|owner| !self.principal_active(*owner))
            .collect();
        self.access_tokens
            .retain(|_, token| !inactive_owners.contains(&token.owner));

        let deleted_owners: BTreeSet<PrincipalId> = self
            .oauth_clients
            .values()
            .map(|client| client.owner)
            .filter(|owner| !self.principal_exists(*owner))
            .collect();
        self.oauth_clients
            .retain(|_, client| !deleted_owners.contains(&client.owner));
        revoked
    }
}
