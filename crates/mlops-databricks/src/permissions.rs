//! The permissions API for token usage and for the model registry root.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::none_if_not_found;
use crate::response::CallId;
use crate::{Error, WorkspaceClient, lenient};

/// An object whose access control list the client manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PermissionObject {
    /// Token usage rights: `authorization/tokens`.
    Tokens,
    /// Workspace-wide grants on every registered model: `registered-models/root`.
    RegistryRoot,
}

impl PermissionObject {
    /// Returns the object path below `/api/2.0/permissions/`.
    pub fn path(self) -> &'static str {
        match self {
            PermissionObject::Tokens => "authorization/tokens",
            PermissionObject::RegistryRoot => "registered-models/root",
        }
    }

    fn segments(self) -> [&'static str; 3] {
        match self {
            PermissionObject::Tokens => ["permissions", "authorization", "tokens"],
            PermissionObject::RegistryRoot => ["permissions", "registered-models", "root"],
        }
    }
}

/// A principal in an access control list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// A group, by display name.
    Group(String),
    /// A user, by user name (email).
    User(String),
    /// A service principal, by application id.
    ServicePrincipal(String),
}

impl Principal {
    /// Returns the JSON key that names this kind of principal.
    pub fn key(&self) -> &'static str {
        match self {
            Principal::Group(_) => "group_name",
            Principal::User(_) => "user_name",
            Principal::ServicePrincipal(_) => "service_principal_name",
        }
    }

    /// Returns the group name, user name or application id.
    pub fn name(&self) -> &str {
        match self {
            Principal::Group(name) | Principal::User(name) | Principal::ServicePrincipal(name) => {
                name
            }
        }
    }
}

/// One entry of a PUT or PATCH request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControlRequest {
    /// Principal that gets the permission.
    pub principal: Principal,
    /// Level such as `CAN_USE`, `CAN_READ` or `CAN_MANAGE`.
    pub permission_level: String,
}

impl AccessControlRequest {
    fn to_json(&self) -> Value {
        let mut entry = json!({ "permission_level": self.permission_level });
        entry[self.principal.key()] = json!(self.principal.name());
        entry
    }
}

/// The access control list of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPermissions {
    /// Object path such as `/authorization/tokens`.
    pub object_id: String,
    /// Object type such as `tokens` or `registered-model`.
    pub object_type: String,
    /// One entry per principal.
    pub access_control_list: Vec<AccessControl>,
}

/// The permissions one principal holds on an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessControl {
    /// Principal that has the permissions.
    pub principal: Principal,
    /// Display name of a user or service principal.
    pub display_name: Option<String>,
    /// Direct and inherited permissions.
    pub permissions: Vec<Permission>,
}

/// One permission level held by a principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Permission {
    /// Level such as `CAN_USE`.
    #[serde(rename = "permission_level")]
    pub level: String,
    /// Whether the permission comes from a parent object.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub inherited: bool,
    /// Paths of the objects the permission is inherited from.
    #[serde(default, deserialize_with = "lenient::list")]
    pub inherited_from_object: Vec<String>,
}

#[derive(Deserialize)]
struct ObjectPermissionsBody {
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    object_id: String,
    #[serde(default, deserialize_with = "lenient::string_or_null")]
    object_type: String,
    #[serde(default, deserialize_with = "lenient::list")]
    access_control_list: Vec<AccessControlBody>,
}

#[derive(Deserialize)]
struct AccessControlBody {
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    service_principal_name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    all_permissions: Vec<Permission>,
}

impl WorkspaceClient {
    /// Fetches an object's access control list.
    ///
    /// Returns `None` on 404: the tokens object does not exist until the workspace has
    /// its first token.
    pub async fn get_permissions(
        &self,
        object: PermissionObject,
    ) -> Result<Option<ObjectPermissions>, Error> {
        let call = self.call(Method::GET, &object.segments());
        let (call_id, response) = match self.send(call).await {
            Ok(sent) => sent,
            Err(error) => return none_if_not_found(Err(error)),
        };
        let body = crate::response::decode_json(&call_id, &response)?;
        convert(&call_id, body).map(Some)
    }

    /// Adds or changes the listed grants (PATCH), leaving other principals' grants alone.
    pub async fn update_permissions(
        &self,
        object: PermissionObject,
        acl: &[AccessControlRequest],
    ) -> Result<ObjectPermissions, Error> {
        self.write_permissions(Method::PATCH, object, acl).await
    }

    /// Replaces all direct grants with the listed ones (PUT).
    ///
    /// Databricks rejects a list without `admins` `CAN_MANAGE` on the tokens and registry
    /// root objects ("Cannot change permissions for group 'admins' to None."). Its token
    /// permission docs say that a principal losing `CAN_USE` loses its tokens at once.
    pub async fn set_permissions(
        &self,
        object: PermissionObject,
        acl: &[AccessControlRequest],
    ) -> Result<ObjectPermissions, Error> {
        self.write_permissions(Method::PUT, object, acl).await
    }

    async fn write_permissions(
        &self,
        method: Method,
        object: PermissionObject,
        acl: &[AccessControlRequest],
    ) -> Result<ObjectPermissions, Error> {
        let entries: Vec<Value> = acl.iter().map(AccessControlRequest::to_json).collect();
        let call = self
            .call(method, &object.segments())
            .json(&json!({ "access_control_list": entries }));
        let (call_id, response) = self.send(call).await?;
        let body = crate::response::decode_json(&call_id, &response)?;
        convert(&call_id, body)
    }
}

fn convert(call_id: &CallId, body: ObjectPermissionsBody) -> Result<ObjectPermissions, Error> {
    let access_control_list = body
        .access_control_list
        .into_iter()
        .map(|entry| access_control(call_id, entry))
        .collect::<Result<_, _>>()?;

    Ok(ObjectPermissions {
        object_id: body.object_id,
        object_type: body.object_type,
        access_control_list,
    })
}

fn access_control(call_id: &CallId, entry: AccessControlBody) -> Result<AccessControl, Error> {
    let principal = if let Some(name) = entry.group_name {
        Principal::Group(name)
    } else if let Some(name) = entry.service_principal_name {
        Principal::ServicePrincipal(name)
    } else if let Some(name) = entry.user_name {
        Principal::User(name)
    } else {
        return Err(call_id.decode_error(
            "an access control entry has no group_name, user_name or service_principal_name",
        ));
    };

    Ok(AccessControl {
        principal,
        display_name: entry.display_name,
        permissions: entry.all_permissions,
    })
}
