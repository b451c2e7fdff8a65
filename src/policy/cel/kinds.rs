//! Resource names for kinds (`Deployment` -> `deployments`), as the API server puts them in an
//! admission request and as `resourceRules` match them: the built-in Kubernetes kinds, and the
//! CustomResourceDefinitions among the inputs.

use std::collections::BTreeMap;

use serde_json::Value;

/// (group, kind, resource, namespaced) for the built-in API.
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("", "Pod", "pods", true),
    ("", "Service", "services", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "Secret", "secrets", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "Namespace", "namespaces", false),
    ("", "Node", "nodes", false),
    ("", "Endpoints", "endpoints", true),
    ("", "Event", "events", true),
    ("", "LimitRange", "limitranges", true),
    ("", "ResourceQuota", "resourcequotas", true),
    ("", "ReplicationController", "replicationcontrollers", true),
    ("", "PodTemplate", "podtemplates", true),
    ("", "Binding", "bindings", true),
    ("", "ComponentStatus", "componentstatuses", false),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("apps", "ControllerRevision", "controllerrevisions", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    ("autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies", true),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", true),
    ("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", false),
    ("storage.k8s.io", "StorageClass", "storageclasses", false),
    ("storage.k8s.io", "CSIDriver", "csidrivers", false),
    ("storage.k8s.io", "VolumeAttachment", "volumeattachments", false),
    ("scheduling.k8s.io", "PriorityClass", "priorityclasses", false),
    ("coordination.k8s.io", "Lease", "leases", true),
    ("discovery.k8s.io", "EndpointSlice", "endpointslices", true),
    ("node.k8s.io", "RuntimeClass", "runtimeclasses", false),
    ("certificates.k8s.io", "CertificateSigningRequest", "certificatesigningrequests", false),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "customresourcedefinitions", false),
    ("apiregistration.k8s.io", "APIService", "apiservices", false),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", false),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", false),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", "flowschemas", false),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", "prioritylevelconfigurations", false),
    ("gateway.networking.k8s.io", "Gateway", "gateways", true),
    ("gateway.networking.k8s.io", "HTTPRoute", "httproutes", true),
    ("gateway.networking.k8s.io", "GatewayClass", "gatewayclasses", false),
];

/// Resource names of the kinds the API serves, the inputs' CRDs included.
#[derive(Clone, Debug, Default)]
pub struct Kinds {
    /// (group, kind) -> (resource, namespaced), from CRDs.
    custom: BTreeMap<(String, String), (String, bool)>,
}

impl Kinds {
    /// Reads the CustomResourceDefinitions among `objects`.
    pub fn new(objects: &[&Value]) -> Kinds {
        let mut custom = BTreeMap::new();
        for o in objects {
            let is_crd = o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
                && o.get("apiVersion").and_then(Value::as_str).is_some_and(|a| a.starts_with("apiextensions.k8s.io/"));
            if !is_crd {
                continue;
            }
            let s = |p: &str| o.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
            let (group, kind, plural) = (s("/spec/group"), s("/spec/names/kind"), s("/spec/names/plural"));
            if kind.is_empty() || plural.is_empty() {
                continue;
            }
            custom.insert((group, kind), (plural, s("/spec/scope") != "Cluster"));
        }
        Kinds { custom }
    }

    /// The resource name and whether it is namespaced. Unknown kinds get the API machinery's guess
    /// (lowercase, plural) and count as namespaced when the object has a namespace.
    pub fn resource(&self, group: &str, kind: &str, has_namespace: bool) -> (String, bool) {
        if let Some((r, n)) = self.custom.get(&(group.to_string(), kind.to_string())) {
            return (r.clone(), *n);
        }
        if let Some((_, _, r, n)) = BUILT_IN.iter().find(|(g, k, _, _)| *g == group && *k == kind) {
            return (r.to_string(), *n);
        }
        (guess_plural(kind), has_namespace)
    }
}

/// `meta.UnsafeGuessKindToResource`: lowercase, then `s`, `es` or `ies`.
fn guess_plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if lower.ends_with('s') {
        return format!("{lower}es");
    }
    if let Some(stem) = lower.strip_suffix('y') {
        return format!("{stem}ies");
    }
    format!("{lower}s")
}
