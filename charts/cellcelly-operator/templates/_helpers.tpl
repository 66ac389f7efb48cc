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
The namespaced rules: exactly what the operator does in a stack's namespace.
Children are created, patched and deleted; Secrets only read (the user or the stack chart makes them);
Pods read and deleted (self-healing); PVCs read and deleted (storage.deletionPolicy Delete).
*/}}
{{- define "cellcelly-operator.namespacedRules" -}}
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks]
  verbs: [get, list, watch, patch, update]
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks/status]
  verbs: [get, patch, update]
# owner references with blockOwnerDeletion need update on the owner's finalizers
- apiGroups: [cellcelly.io]
  resources: [cellcellystacks/finalizers]
  verbs: [update]
- apiGroups: [apps]
  resources: [statefulsets, deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, update, patch, delete]
# kopf's own: peering of namespace-scoped operators
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end -}}
