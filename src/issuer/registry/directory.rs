//! Rules of organizations and their members: a membership needs both the organization and the
//! agent, an agent is a member of an organization at most once, and each change writes its
//! event.

use crate::issuer::model::{EventType, MembershipRecord, OrganizationRecord, Page, PageRequest};
use crate::issuer::storage::StorageError;

use super::outbox::emit;
use super::{Change, Object, Registry, RuleError};

impl Registry {
    /// Stores an organization; writes `organization.created`.
    pub(crate) async fn create_organization(
        &self,
        org: OrganizationRecord,
        change: Change,
    ) -> Result<OrganizationRecord, RuleError> {
        self.write(move |tx| {
            tx.insert_organization(&org)?;
            emit(
                tx,
                &change,
                EventType::OrganizationCreated,
                None,
                &org,
                Vec::new(),
            )?;
            Ok(org.clone())
        })
        .await
    }

    /// One organization.
    pub(crate) async fn organization(
        &self,
        id: &str,
    ) -> Result<Option<OrganizationRecord>, RuleError> {
        let id = id.to_owned();
        self.storage.read(move |tx| Ok(tx.organization(&id)?)).await
    }

    /// Adds a membership; writes `organization.membership.created`.
    pub(crate) async fn add_membership(
        &self,
        membership: MembershipRecord,
        change: Change,
    ) -> Result<MembershipRecord, RuleError> {
        self.write(move |tx| {
            let m = &membership;
            if tx.organization(&m.organization_id)?.is_none() {
                return Err(RuleError::NotFound(Object::Organization));
            }
            if tx.agent(&m.member_id)?.is_none() {
                return Err(RuleError::NotFound(Object::Agent));
            }
            tx.insert_membership(m).map_err(|e| match e {
                StorageError::Duplicate => RuleError::AlreadyMember,
                e => RuleError::Storage(e),
            })?;
            emit(
                tx,
                &change,
                EventType::MembershipCreated,
                Some(&m.member_id),
                m,
                Vec::new(),
            )?;
            Ok(membership.clone())
        })
        .await
    }

    /// An organization's members, newest first.
    pub(crate) async fn memberships(
        &self,
        org_id: &str,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, RuleError> {
        let org_id = org_id.to_owned();
        self.storage
            .read(move |tx| {
                if tx.organization(&org_id)?.is_none() {
                    return Err(RuleError::NotFound(Object::Organization));
                }
                Ok(tx.memberships(&org_id, &page)?)
            })
            .await
    }

    /// Removes a membership; writes `organization.membership.deleted`.
    pub(crate) async fn delete_membership(
        &self,
        org_id: &str,
        member_id: &str,
        change: Change,
    ) -> Result<(), RuleError> {
        let (org_id, member_id) = (org_id.to_owned(), member_id.to_owned());
        self.write(move |tx| {
            let m = tx
                .membership(&org_id, &member_id)?
                .ok_or(RuleError::NotFound(Object::Membership))?;
            tx.delete_membership(&org_id, &member_id)?;
            emit(
                tx,
                &change,
                EventType::MembershipDeleted,
                Some(&member_id),
                &m,
                Vec::new(),
            )
        })
        .await
    }
}
