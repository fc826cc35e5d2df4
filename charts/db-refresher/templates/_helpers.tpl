{{- define "db-refresher.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "db-refresher.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "db-refresher.selectorLabels" -}}
app.kubernetes.io/name: {{ include "db-refresher.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "db-refresher.labels" -}}
{{ include "db-refresher.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "db-refresher.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "db-refresher.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "db-refresher.configDir" -}}/etc/db-refresher/config{{- end -}}
{{- define "db-refresher.secretsDir" -}}/etc/db-refresher/secrets{{- end -}}

{{/* db-refresher's config file: the config keys of the values, unchanged. */}}
{{- define "db-refresher.config" -}}
{{- $config := pick .Values "stateDir" "logLevel" "publicUrl" "server" "notifications" "jobs" -}}
{{- if .Values.leaderElection.enabled -}}
{{- $le := dict "leaseName" (include "db-refresher.fullname" .) "leaseDurationSeconds" (int .Values.leaderElection.leaseDurationSeconds) "renewDeadlineSeconds" (int .Values.leaderElection.renewDeadlineSeconds) "retryPeriodSeconds" (int .Values.leaderElection.retryPeriodSeconds) -}}
{{- $server := deepCopy (.Values.server | default dict) -}}
{{- $_ := set $server "leaderElection" $le -}}
{{- $_ := set $config "server" $server -}}
{{- end -}}
{{- if not .Values.jobs -}}
{{- fail "jobs: at least one job is required (the same `jobs` list as in db-refresher's config file)" -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{- define "db-refresher.server" -}}
{{- toJson (.Values.server | default dict) -}}
{{- end -}}

{{/* The HTTP port: server.port, default 8080 as in db-refresher. */}}
{{- define "db-refresher.port" -}}
{{- $server := include "db-refresher.server" . | fromJson -}}
{{- $port := 8080 -}}
{{- if hasKey $server "port" -}}{{- $port = int $server.port -}}{{- end -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "server.port: %d cannot be used in Kubernetes: the probes, the container port and the Service need a fixed port 1-65535" $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/*
The cnpg targets reached with this release's service account (no target.kubeconfig of their own), as
JSON: {"<namespace>": ["<cluster name>", ...]}.
*/}}
{{- define "db-refresher.cnpgTargets" -}}
{{- $targets := dict -}}
{{- range .Values.jobs -}}
{{- $target := .target | default dict -}}
{{- if and (eq (toString $target.kind) "cnpg") (not $target.kubeconfig) -}}
{{- $ns := toString $target.namespace -}}
{{- $names := get $targets $ns | default (list) -}}
{{- if eq (include "db-refresher.strategyKind" .) "blueGreen" -}}
{{- /* <clusterName> too: a job switched from recreate adopts the Cluster recreate made, then deletes it after keepPrevious. */ -}}
{{- $names = concat $names (list (toString $target.clusterName) (printf "%s-a" (toString $target.clusterName)) (printf "%s-b" (toString $target.clusterName))) -}}
{{- else -}}
{{- $names = append $names (toString $target.clusterName) -}}
{{- end -}}
{{- $_ := set $targets $ns ($names | uniq) -}}
{{- end -}}
{{- end -}}
{{- toJson $targets -}}
{{- end -}}

{{/* A job's strategy kind: `strategy: blueGreen` or `strategy: {kind: blueGreen, ...}`; default recreate. */}}
{{- define "db-refresher.strategyKind" -}}
{{- $strategy := .strategy | default "recreate" -}}
{{- if kindIs "map" $strategy -}}{{- $strategy.kind | default "recreate" -}}{{- else -}}{{- toString $strategy -}}{{- end -}}
{{- end -}}

{{/*
The stable Services of blueGreen cnpg jobs reached with this release's service account, as JSON:
{"<namespace>": ["<service name>", ...]}. The name is strategy.serviceName, default the clusterName.
*/}}
{{- define "db-refresher.cnpgServices" -}}
{{- $services := dict -}}
{{- range .Values.jobs -}}
{{- $target := .target | default dict -}}
{{- if and (eq (toString $target.kind) "cnpg") (not $target.kubeconfig) (eq (include "db-refresher.strategyKind" .) "blueGreen") -}}
{{- $ns := toString $target.namespace -}}
{{- $name := toString $target.clusterName -}}
{{- if kindIs "map" .strategy -}}{{- $name = .strategy.serviceName | default $name | toString -}}{{- end -}}
{{- $_ := set $services $ns (append (get $services $ns | default (list)) $name | uniq) -}}
{{- end -}}
{{- end -}}
{{- toJson $services -}}
{{- end -}}

{{/*
The Kubernetes run history, as JSON: {"enabled": bool, "namespace": ..., "configMaps": [...]}. Enabled
when server.history.kind is kubernetes and it uses the service account (no history.kubeconfig).
*/}}
{{- define "db-refresher.history" -}}
{{- $server := include "db-refresher.server" . | fromJson -}}
{{- $history := $server.history | default dict -}}
{{- $enabled := and (eq (toString $history.kind) "kubernetes") (not $history.kubeconfig) -}}
{{- $prefix := $history.configMapPrefix | default "db-refresher-runs" -}}
{{- $names := list -}}
{{- range .Values.jobs -}}
{{- $names = append $names (printf "%s-%s" $prefix (toString .name)) -}}
{{- end -}}
{{- toJson (dict "enabled" $enabled "namespace" ($history.namespace | default .Release.Namespace) "configMaps" $names) -}}
{{- end -}}

{{/* Whether the pod needs its service account token at all. */}}
{{- define "db-refresher.needsKubernetesApi" -}}
{{- $targets := include "db-refresher.cnpgTargets" . | fromJson -}}
{{- $history := include "db-refresher.history" . | fromJson -}}
{{- if or (gt (len $targets) 0) $history.enabled .Values.leaderElection.enabled -}}true{{- end -}}
{{- end -}}

{{/* The rules of the Role each cnpg target namespace gets; `names` are its Cluster names, `services` its blueGreen Services. */}}
{{- define "db-refresher.targetRules" -}}
{{- if .services }}
# blueGreen: the stable Service clients connect to. get and update (switching its selector to the new
# Cluster's primary) only the Services the config names; create is granted without names because RBAC
# cannot limit a create by name. The quota preflight reads the namespace's ResourceQuotas.
- apiGroups: [""]
  resources: [services]
  resourceNames: {{ toJson .services }}
  verbs: [get, update]
- apiGroups: [""]
  resources: [services]
  verbs: [create]
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [list]
{{- end }}
# The jobs' Clusters: read and watch (preflight, teardown, start), delete (teardown), annotate with the
# outcome (patch). A list or watch of one Cluster uses fieldSelector metadata.name, which RBAC matches
# against resourceNames like a get.
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters]
  resourceNames: {{ toJson .names }}
  verbs: [get, list, watch, delete, patch]
# Creating the Cluster (clone). RBAC sees no name on a create, so it cannot be limited by name.
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters]
  verbs: [create]
# get only: the Secrets the values name (replication password or certificates, the owner's secret), the
# generated <cluster>-app, and, by name, the Secrets a deleted Cluster owned while teardown waits for them.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Teardown waits for the old Cluster's pods, volumes and services to go; preflight looks for orphaned
# volumes and at the Services' addresses; start reads the clone Job's pods.
- apiGroups: [""]
  resources: [pods, persistentvolumeclaims, services]
  verbs: [list, watch]
# Preflight: a Lease named after a Cluster that something else controls would stop CloudNativePG 1.30.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  resourceNames: {{ toJson .names }}
  verbs: [get]
# The clone Job's log, to explain a failed or stuck clone.
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch]
# RefreshStarted / RefreshSucceeded / RefreshFailed Events on the Cluster.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Preflight checks that the target namespace exists. A request for Namespace X counts as namespaced in
# X, so a Role in X can allow it, limited to X itself.
- apiGroups: [""]
  resources: [namespaces]
  resourceNames: {{ toJson .namespaces }}
  verbs: [get]
{{- end -}}
