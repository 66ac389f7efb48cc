{{/* Chart name and version as used in the helm.sh/chart label. */}}
{{- define "cellcelly-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name (the release name alone when it already names the chart), at most 63. */}}
{{- define "cellcelly-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cellcelly-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels on everything the chart renders. */}}
{{- define "cellcelly-operator.labels" -}}
helm.sh/chart: {{ include "cellcelly-operator.chart" . }}
{{ include "cellcelly-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cellcelly
app.kubernetes.io/component: operator
{{- end -}}

{{- define "cellcelly-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cellcelly-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces a namespace-scoped operator watches (the release's when none are listed). */}}
{{- define "cellcelly-operator.namespaces" -}}
{{- if .Values.watch.namespaces -}}
{{- toJson (uniq .Values.watch.namespaces) -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaced rules: exactly the requests the operator sends in a stack's namespace (list, create,
merge-patch, delete; never PUT nor watch on children) plus kopf's own (list/watch/patch the stacks, patch
their status, core Events). tests/platform/test_platform_rbac.py derives them from the operator's calls.
Secrets: get and create only (the logins and the OCS API key it makes once; never changed), get by
name when rbac.stacks lists the stacks (charts/README.md, "Least privilege").
Pods: list and delete (self-healing); PVCs: list and delete (storage.deletionPolicy Delete).
*/}}
{{- define "cellcelly-operator.namespacedRules" -}}
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks]
  verbs: [get, list, watch, patch]
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks/status]
  verbs: [patch]
# owner references with blockOwnerDeletion need update on the owner's finalizers (where the
# OwnerReferencesPermissionEnforcement admission plugin runs)
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [list, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [list, create, patch, delete]
{{- if .Values.rbac.stacks }}
# rbac.stacks: `get` and `patch` (the entries a newer operator version adds to a login Secret) only of the
# Secrets the operator makes for those stacks; `create` stays unnamed (RBAC cannot restrict a create by
# name: the object's name is not known when the request is authorized)
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  resourceNames:
    {{- range $stack := .Values.rbac.stacks }}
    {{- range $made := list "oracle" "postgresql" "ocs-api-key" "kafka-users" "voltdb" }}
    - {{ printf "%s-%s" $stack $made }}
    {{- end }}
    {{- end }}
  verbs: [get, patch]
{{- else }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
{{- end }}
- apiGroups: [""]
  resources: [pods]
  verbs: [list, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, delete]
# ours (events.k8s.io) and kopf's (core)
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [list, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [list, create, patch, delete]
# kopf's own: peering of namespace-scoped operators
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end -}}
