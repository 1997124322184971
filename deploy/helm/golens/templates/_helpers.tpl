{{/* The chart's name, for labels. */}}
{{- define "golens.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name, with the chart name unless it is in
there already ("golens", "prod-golens"). */}}
{{- define "golens.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the agent's pods; never change across upgrades. */}}
{{- define "golens.selectorLabels" -}}
app.kubernetes.io/name: {{ include "golens.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "golens.labels" -}}
{{ include "golens.selectorLabels" . }}
app.kubernetes.io/component: agent
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "golens.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "golens.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding OTEL_EXPORTER_OTLP_HEADERS (key "headers"): the
existing one named, else <fullname>-otlp, which the chart renders when
otlp.headers are set and an admin may create otherwise. */}}
{{- define "golens.headersSecret" -}}
{{- if .Values.otlp.existingSecret -}}
{{- .Values.otlp.existingSecret -}}
{{- else -}}
{{- printf "%s-otlp" (include "golens.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The agent's config.yaml (keys: golens' long flag names, "_" for "-"). */}}
{{- define "golens.config" -}}
discover:
  enabled: true
  k8s_opt_in_label: {{ required "optInLabel is required (key=value)" .Values.optInLabel | quote }}
  k8s_namespaces: {{ .Values.namespaces | toJson }}
sampling_strategies: /etc/golens/sampling.json
inject_context: {{ .Values.injectContext }}
track_goroutines: {{ .Values.trackGoroutines }}
log_level: {{ .Values.logLevel }}
log_format: {{ .Values.logFormat }}
{{- with .Values.otlp.compression }}
otlp_compression: {{ . | quote }}
{{- end }}
{{- end -}}
