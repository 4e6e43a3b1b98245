{{/* The chart's name, for app.kubernetes.io/name (the rules' job label). */}}
{{- define "policyreport-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: the release name when it already holds the chart's
name (`helm install policyreport-exporter …` names everything
policyreport-exporter, as deploy/ does), else release-chart.
*/}}
{{- define "policyreport-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "policyreport-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What selects the exporter's pods. */}}
{{- define "policyreport-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "policyreport-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object (the Deployment and its pods add the version, as deploy/ does). */}}
{{- define "policyreport-exporter.labels" -}}
{{ include "policyreport-exporter.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "policyreport-exporter.chart" . }}
{{- end }}

{{- define "policyreport-exporter.version" -}}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- end }}

{{- define "policyreport-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "policyreport-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container's arguments: `serve`, then each flag that has a value, in the
order of values.yaml. A list flag takes one comma-separated argument, as the
exporter reads it (an empty item stays: `--namespace-exclude ,kube-*`).
*/}}
{{- define "policyreport-exporter.args" -}}
{{- $args := list "serve" "--log-format" (required "logFormat is required (json or text)" .Values.logFormat) }}
{{- with .Values.logLevel }}{{ $args = concat $args (list "--log-level" .) }}{{ end }}
{{- with .Values.namespaceInclude }}{{ $args = concat $args (list "--namespace-include" (join "," .)) }}{{ end }}
{{- with .Values.namespaceExclude }}{{ $args = concat $args (list "--namespace-exclude" (join "," .)) }}{{ end }}
{{- with .Values.namespaceLabels }}{{ $args = concat $args (list "--namespace-labels" (join "," .)) }}{{ end }}
{{- with .Values.compat }}{{ $args = concat $args (list "--compat" .) }}{{ end }}
{{- with .Values.relistInterval | toString }}{{ $args = concat $args (list "--relist-interval" .) }}{{ end }}
{{- with .Values.staleAfter | toString }}{{ $args = concat $args (list "--stale-after" .) }}{{ end }}
{{- with .Values.extraLabels }}{{ $args = concat $args (list "--extra-labels" (join "," .)) }}{{ end }}
{{- if eq .Values.metricsAuth "kubernetes" }}{{ $args = concat $args (list "--metrics-auth" "kubernetes") }}{{ end }}
{{- if .Values.webConfig.enabled }}{{ $args = concat $args (list "--web-config-file" (include "policyreport-exporter.webConfigFile" .)) }}{{ end }}
{{- $args = concat $args .Values.extraArgs }}
{{- toJson $args }}
{{- end }}

{{/* Where the web config file is mounted (the Secret <fullname>-web-config). */}}
{{- define "policyreport-exporter.webConfigFile" -}}
/etc/policyreport-exporter/web/web-config.yml
{{- end }}

{{/*
"true" when the exporter serves HTTPS: webConfig is enabled and its
tls_server_config sets one of the fields that turn TLS on (as the exporter
and exporter-toolkit decide); empty otherwise.
*/}}
{{- define "policyreport-exporter.tls" -}}
{{- if .Values.webConfig.enabled }}
{{- $tls := dig "tls_server_config" dict (.Values.webConfig.config | default dict) | default dict }}
{{- $on := false }}
{{- range list "cert_file" "cert" "key_file" "key" "client_ca_file" "client_ca" "client_auth_type" }}
{{- if get $tls . }}{{ $on = true }}{{ end }}
{{- end }}
{{- if $on }}
{{- /* The *_file paths can only name files of the mounted TLS Secret. */}}
{{- if and (or $tls.cert_file $tls.key_file $tls.client_ca_file) (not $.Values.webConfig.tlsSecretName) }}
{{- fail "webConfig.tlsSecretName is required: webConfig.config.tls_server_config names certificate files" }}
{{- end }}
{{- "true" }}
{{- end }}
{{- end }}
{{- end }}
