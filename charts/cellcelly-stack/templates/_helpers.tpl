{{/* Chart name and version as used in the helm.sh/chart label. */}}
{{- define "cellcelly-stack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The CellCellyStack's name: values.name or the release name; the CRD allows at most 40 characters. */}}
{{- define "cellcelly-stack.name" -}}
{{- $name := .Values.name | default .Release.Name -}}
{{- if gt (len $name) 40 -}}
{{- fail (printf "the stack name %q is longer than 40 characters: set name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "cellcelly-stack.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The standard labels on everything the chart renders. */}}
{{- define "cellcelly-stack.labels" -}}
helm.sh/chart: {{ include "cellcelly-stack.chart" . }}
{{ include "cellcelly-stack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.version | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cellcelly
{{- end -}}

{{/* One Opaque Secret the chart was asked to create: (dict "root" $ "name" NAME "what" TEXT "data" DICT). */}}
{{- define "cellcelly-stack.secret" -}}
apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cellcelly-stack.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .what }}
stringData:
  {{- range $key, $value := .data }}
  {{ $key }}: {{ required (printf "createSecrets: %s needs %s (no default: never a secret in values.yaml)" $.what $key) $value | quote }}
  {{- end }}
{{- end -}}

{{/* The name of an external back end's secretRef, required when the chart is to create that Secret. */}}
{{- define "cellcelly-stack.externalSecretName" -}}
{{- $backend := index .root.Values .backend -}}
{{- $external := $backend.external | default dict -}}
{{- $ref := $external.secretRef | default dict -}}
{{- required (printf "createSecrets.%s: set %s.external.secretRef.name (the Secret's name)" .backend .backend) $ref.name -}}
{{- end -}}
