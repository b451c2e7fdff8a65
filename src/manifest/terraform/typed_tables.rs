//! The naming and typing rules of hashicorp/terraform-provider-kubernetes, as tables: which
//! resource type makes which kind, which blocks repeat (and become lists), which attributes are
//! renamed irregularly, which strings are numbers, and the schema defaults the provider sends.
//! Sources: `kubernetes/schema_*.go` (defaults) and `kubernetes/structures_*.go` (expand*).

/// `(resource type without _v1, apiVersion, kind)`.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("kubernetes_pod", "v1", "Pod"),
    ("kubernetes_deployment", "apps/v1", "Deployment"),
    ("kubernetes_stateful_set", "apps/v1", "StatefulSet"),
    ("kubernetes_daemon_set", "apps/v1", "DaemonSet"),
    ("kubernetes_daemonset", "apps/v1", "DaemonSet"),
    ("kubernetes_job", "batch/v1", "Job"),
    // The provider sends the un-suffixed resource to batch/v1beta1 (provider.go, resource_kubernetes_cron_job_v1beta1.go).
    ("kubernetes_cron_job", "batch/v1beta1", "CronJob"),
    ("kubernetes_replication_controller", "v1", "ReplicationController"),
    ("kubernetes_service", "v1", "Service"),
    ("kubernetes_namespace", "v1", "Namespace"),
    ("kubernetes_role", "rbac.authorization.k8s.io/v1", "Role"),
    ("kubernetes_cluster_role", "rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("kubernetes_role_binding", "rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("kubernetes_cluster_role_binding", "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("kubernetes_network_policy", "networking.k8s.io/v1", "NetworkPolicy"),
    ("kubernetes_config_map", "v1", "ConfigMap"),
    ("kubernetes_service_account", "v1", "ServiceAccount"),
    ("kubernetes_default_service_account", "v1", "ServiceAccount"),
    ("kubernetes_secret", "v1", "Secret"),
    ("kubernetes_endpoints", "v1", "Endpoints"),
    ("kubernetes_endpoint_slice", "discovery.k8s.io/v1", "EndpointSlice"),
    ("kubernetes_limit_range", "v1", "LimitRange"),
    ("kubernetes_persistent_volume", "v1", "PersistentVolume"),
    ("kubernetes_persistent_volume_claim", "v1", "PersistentVolumeClaim"),
    ("kubernetes_resource_quota", "v1", "ResourceQuota"),
    ("kubernetes_api_service", "apiregistration.k8s.io/v1", "APIService"),
    ("kubernetes_horizontal_pod_autoscaler", "autoscaling/v1", "HorizontalPodAutoscaler"),
    ("kubernetes_ingress_class", "networking.k8s.io/v1", "IngressClass"),
    ("kubernetes_priority_class", "scheduling.k8s.io/v1", "PriorityClass"),
    ("kubernetes_storage_class", "storage.k8s.io/v1", "StorageClass"),
    ("kubernetes_runtime_class", "node.k8s.io/v1", "RuntimeClass"),
];

/// Resource types whose un-suffixed and `_v1` forms send different API versions (provider.go
/// registers a v1beta1 resource under the old name), and the other versioned names.
const VERSIONED: &[(&str, &str, &str)] = &[
    // resource_kubernetes_ingress_v1beta1.go: the un-suffixed resource goes through
    // ExtensionsV1beta1(), with the v1beta1 spec (`backend { service_name service_port }`).
    ("kubernetes_ingress", "extensions/v1beta1", "Ingress"),
    ("kubernetes_ingress_v1", "networking.k8s.io/v1", "Ingress"),
    ("kubernetes_cron_job_v1", "batch/v1", "CronJob"),
    ("kubernetes_horizontal_pod_autoscaler_v2", "autoscaling/v2", "HorizontalPodAutoscaler"),
    ("kubernetes_horizontal_pod_autoscaler_v2beta2", "autoscaling/v2beta2", "HorizontalPodAutoscaler"),
    ("kubernetes_certificate_signing_request", "certificates.k8s.io/v1beta1", "CertificateSigningRequest"),
    ("kubernetes_certificate_signing_request_v1", "certificates.k8s.io/v1", "CertificateSigningRequest"),
    ("kubernetes_pod_disruption_budget", "policy/v1beta1", "PodDisruptionBudget"),
    ("kubernetes_pod_disruption_budget_v1", "policy/v1", "PodDisruptionBudget"),
    (
        "kubernetes_validating_webhook_configuration",
        "admissionregistration.k8s.io/v1beta1",
        "ValidatingWebhookConfiguration",
    ),
    (
        "kubernetes_validating_webhook_configuration_v1",
        "admissionregistration.k8s.io/v1",
        "ValidatingWebhookConfiguration",
    ),
    ("kubernetes_mutating_webhook_configuration", "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("kubernetes_mutating_webhook_configuration_v1", "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("kubernetes_csi_driver", "storage.k8s.io/v1beta1", "CSIDriver"),
    ("kubernetes_csi_driver_v1", "storage.k8s.io/v1", "CSIDriver"),
];

pub fn kind_of(resource_type: &str) -> Option<(&'static str, &'static str)> {
    if let Some((_, a, k)) = VERSIONED.iter().find(|(t, _, _)| *t == resource_type) {
        return Some((*a, *k));
    }
    let base = resource_type.strip_suffix("_v1").unwrap_or(resource_type);
    KINDS.iter().find(|(t, _, _)| *t == base).map(|(_, a, k)| (*a, *k))
}

/// Blocks that repeat, and the list field they become. (`port` is `ports` in a container and in
/// a Service; `rule`, `subject`… likewise.)
const REPEATED: &[(&str, &str)] = &[
    ("container", "containers"),
    ("init_container", "initContainers"),
    ("ephemeral_container", "ephemeralContainers"),
    ("volume", "volumes"),
    ("volume_mount", "volumeMounts"),
    ("volume_device", "volumeDevices"),
    ("port", "ports"),
    ("ports", "ports"),
    ("env", "env"),
    ("env_from", "envFrom"),
    ("toleration", "tolerations"),
    ("image_pull_secrets", "imagePullSecrets"),
    ("host_aliases", "hostAliases"),
    ("topology_spread_constraint", "topologySpreadConstraints"),
    ("volume_claim_template", "volumeClaimTemplates"),
    ("readiness_gate", "readinessGates"),
    ("sysctl", "sysctls"),
    ("rule", "rules"),
    ("subject", "subjects"),
    ("path", "paths"),
    ("tls", "tls"),
    ("ingress", "ingress"),
    ("egress", "egress"),
    ("from", "from"),
    ("to", "to"),
    ("match_expressions", "matchExpressions"),
    ("match_fields", "matchFields"),
    ("node_selector_term", "nodeSelectorTerms"),
    ("preferred_during_scheduling_ignored_during_execution", "preferredDuringSchedulingIgnoredDuringExecution"),
    ("http_header", "httpHeaders"),
    ("option", "options"),
    ("items", "items"),
    ("sources", "sources"),
    ("cluster_role_selectors", "clusterRoleSelectors"),
    ("limit", "limits"),
    ("match_expression", "matchExpressions"),
    ("subset", "subsets"),
    ("address", "addresses"),
    ("not_ready_address", "notReadyAddresses"),
    ("endpoint", "endpoints"),
    ("metric", "metrics"),
    ("policy", "policies"),
    ("allowed_topologies", "allowedTopologies"),
    ("match_label_expressions", "matchLabelExpressions"),
    ("webhook", "webhooks"),
];

/// Attribute names whose camelCase is not mechanical.
const RENAMED: &[(&str, &str)] = &[
    ("host_ipc", "hostIPC"),
    ("host_pid", "hostPID"),
    ("host_ip", "hostIP"),
    ("cluster_ip", "clusterIP"),
    ("cluster_ips", "clusterIPs"),
    ("external_ips", "externalIPs"),
    ("load_balancer_ip", "loadBalancerIP"),
    ("non_resource_urls", "nonResourceURLs"),
    ("pod_ip", "podIP"),
    ("storage_provisioner", "provisioner"),
    ("ca_bundle", "caBundle"),
    ("url", "url"),
];

/// The list field a repeated block becomes, or `None` if the block appears once (an object).
/// `parent` is the Terraform name of the enclosing block.
pub fn repeated(block: &str, parent: &str) -> Option<&'static str> {
    if block == "required_during_scheduling_ignored_during_execution" {
        // A list in pod (anti-)affinity, one object in node affinity.
        return (parent != "node_affinity").then_some("requiredDuringSchedulingIgnoredDuringExecution");
    }
    if (block == "path" && parent != "http") || (block == "port" && parent == "service") {
        return None;
    }
    REPEATED.iter().find(|(b, _)| *b == block).map(|(_, k)| *k)
}

pub fn camel(name: &str) -> String {
    if let Some((_, k)) = RENAMED.iter().find(|(t, _)| *t == name) {
        return (*k).to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Strings in the provider's schema that it parses into integers (`strconv.Atoi` / `ParseInt`).
pub const INT_STRINGS: &[&str] =
    &["run_as_user", "run_as_group", "fs_group", "replicas", "ttl_seconds_after_finished", "expiration_seconds"];

/// Octal strings (`"0644"`): file modes.
pub const OCTAL_STRINGS: &[&str] = &["default_mode", "mode"];

/// IntOrString fields: `intstr.Parse`, a number when the text is one.
pub const INT_OR_STRING: &[&str] = &["target_port", "max_surge", "max_unavailable", "min_available", "port"];

/// Boolean fields that are plain `bool` with `omitempty` in the Kubernetes types: `false` is not
/// sent. (Pointer booleans such as `privileged` are sent even when false.)
pub const PLAIN_BOOLS: &[&str] = &[
    "hostNetwork",
    "hostIPC",
    "hostPID",
    "stdin",
    "stdinOnce",
    "tty",
    "readOnly",
    "paused",
    "publishNotReadyAddresses",
    "hostUsers",
];

/// Fields of the state that are computed by the cluster, not sent (plan files carry them).
/// (`wait_for_*` and `auto_approve` steer the provider and are not sent either.)
pub const COMPUTED: &[&str] = &[
    "uid",
    "resource_version",
    "generation",
    "self_link",
    "wait_for_rollout",
    "wait_for_service_account_token",
    "wait_for_load_balancer",
    "wait_for_completion",
    "auto_approve",
    "certificate",
];

/// Where a block sits, for its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Other,
    /// A pod spec; `true` inside a Job or CronJob (restart policy `Never`).
    PodSpec(bool),
    Container,
    ContainerSecurityContext,
    ContainerPort,
    DeploymentSpec,
    DaemonSetSpec,
    StatefulSetSpec,
    VolumeMount,
    /// `metadata` of a namespaced object (not a pod template's): the schema defaults `namespace`.
    ObjectMetadata,
    JobSpec,
    CronJobSpec,
    ServiceSpec,
    ServicePort,
}

/// Schema defaults the provider sends when the block is present and the attribute is not set
/// (Kubernetes field names; numbers as `i64`).
pub fn defaults(role: Role) -> &'static [(&'static str, Fallback)] {
    use Fallback::*;
    match role {
        Role::PodSpec(batch) => {
            if batch {
                &[
                    ("automountServiceAccountToken", Bool(true)),
                    ("dnsPolicy", Str("ClusterFirst")),
                    ("enableServiceLinks", Bool(true)),
                    ("restartPolicy", Str("Never")),
                    ("shareProcessNamespace", Bool(false)),
                    ("terminationGracePeriodSeconds", Int(30)),
                ]
            } else {
                &[
                    ("automountServiceAccountToken", Bool(true)),
                    ("dnsPolicy", Str("ClusterFirst")),
                    ("enableServiceLinks", Bool(true)),
                    ("restartPolicy", Str("Always")),
                    ("shareProcessNamespace", Bool(false)),
                    ("terminationGracePeriodSeconds", Int(30)),
                ]
            }
        }
        Role::Container => &[("terminationMessagePath", Str("/dev/termination-log"))],
        Role::ContainerSecurityContext => &[
            ("allowPrivilegeEscalation", Bool(true)),
            ("privileged", Bool(false)),
            ("readOnlyRootFilesystem", Bool(false)),
            // SDKv2 hands expand* every schema key; `run_as_non_root` is read with `ok` only.
            ("runAsNonRoot", Bool(false)),
        ],
        Role::ContainerPort | Role::ServicePort => &[("protocol", Str("TCP"))],
        // `replicas` is Computed without a default: not sent when unset (structures_deployment.go).
        Role::DeploymentSpec => &[("progressDeadlineSeconds", Int(600)), ("revisionHistoryLimit", Int(10))],
        Role::DaemonSetSpec => &[("revisionHistoryLimit", Int(10))],
        // Computed without a default, but expanded with a type check only, so an unset value goes
        // out as 0 (structures_stateful_set.go).
        Role::StatefulSetSpec => &[("revisionHistoryLimit", Int(0))],
        // `manual_selector` is read with `ok` only (structure_job.go): false goes out.
        Role::JobSpec => &[
            ("backoffLimit", Int(6)),
            ("completions", Int(1)),
            ("manualSelector", Bool(false)),
            ("parallelism", Int(1)),
        ],
        // The history limits are sent only when they differ from their defaults 1 and 3
        // (structure_cron_job_v1.go), so they are not defaults here.
        Role::CronJobSpec => &[("concurrencyPolicy", Str("Allow")), ("suspend", Bool(false))],
        Role::VolumeMount => &[("mountPropagation", Str("None"))],
        Role::ObjectMetadata => &[("namespace", Str("default"))],
        Role::ServiceSpec => &[("sessionAffinity", Str("None")), ("type", Str("ClusterIP"))],
        Role::Other => &[],
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Fallback {
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

/// Kinds without a namespace (their metadata gets no default namespace).
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "IngressClass"
            | "CSIDriver"
            | "RuntimeClass"
            | "APIService"
            | "CertificateSigningRequest"
    )
}

/// The role of a child block, from its Terraform name, the parent's role and the kind.
pub fn child_role(kind: &str, parent: Role, parent_name: &str, name: &str) -> Role {
    let batch = matches!(kind, "Job" | "CronJob");
    match (parent, name) {
        (Role::Container, "security_context") => Role::ContainerSecurityContext,
        (Role::Container, "port") => Role::ContainerPort,
        (Role::Container, "volume_mount") => Role::VolumeMount,
        (_, "metadata") if parent_name == "volume_claim_template" => Role::ObjectMetadata,
        (Role::PodSpec(_), "container" | "init_container") => Role::Container,
        (Role::ServiceSpec, "port") => Role::ServicePort,
        (_, "spec") if parent_name == "template" => Role::PodSpec(batch),
        (_, "spec") if parent_name == "job_template" => Role::JobSpec,
        (_, "spec") if parent_name.is_empty() => match kind {
            "Pod" => Role::PodSpec(false),
            "Deployment" => Role::DeploymentSpec,
            "DaemonSet" => Role::DaemonSetSpec,
            "StatefulSet" => Role::StatefulSetSpec,
            "Job" => Role::JobSpec,
            "CronJob" => Role::CronJobSpec,
            "Service" => Role::ServiceSpec,
            _ => Role::Other,
        },
        _ => Role::Other,
    }
}
