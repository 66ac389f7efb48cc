{{/* Chart name and version as used in the helm.sh/chart label. */}}
{{- define "cellcelly-crds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* A release-scoped name, at most 63 characters. */}}
{{- define "cellcelly-crds.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cellcelly-crds.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels on everything the chart renders. */}}
{{- define "cellcelly-crds.labels" -}}
helm.sh/chart: {{ include "cellcelly-crds.chart" . }}
{{ include "cellcelly-crds.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cellcelly
{{- end -}}
