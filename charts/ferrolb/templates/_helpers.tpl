{{/* The chart name, or nameOverride. */}}
{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: fullnameOverride, else the release name (plus the chart name if the
release name does not contain it). Kept to 50 characters so suffixes like "-controller" still fit 63. */}}
{{- define "ferrolb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component; call with (dict "ctx" $ "component" "controller"). */}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The image reference. */}}
{{- define "ferrolb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "ferrolb.controller.serviceAccountName" -}}
{{- default (printf "%s-controller" (include "ferrolb.fullname" .)) .Values.controller.serviceAccount.name }}
{{- end }}

{{- define "ferrolb.speaker.serviceAccountName" -}}
{{- default (printf "%s-speaker" (include "ferrolb.fullname" .)) .Values.speaker.serviceAccount.name }}
{{- end }}

{{/* The Lease the controller replicas elect a leader with; RBAC narrows get/update to it. */}}
{{- define "ferrolb.controller.leaseName" -}}
{{- printf "%s-controller" (include "ferrolb.fullname" .) }}
{{- end }}

{{/* The Secret holding the speakers' membership key. */}}
{{- define "ferrolb.membershipSecretName" -}}
{{- default (printf "%s-membership" (include "ferrolb.fullname" .)) .Values.speaker.membership.existingSecret }}
{{- end }}

{{- define "ferrolb.membershipSecretKey" -}}
{{- if .Values.speaker.membership.existingSecret }}{{ .Values.speaker.membership.existingSecretKey }}{{ else }}key{{ end }}
{{- end }}

{{/* The key in that Secret holding the key before the last rotation, still accepted. */}}
{{- define "ferrolb.membershipSecretPreviousKey" -}}
{{- if .Values.speaker.membership.existingSecret }}{{ default "previousKey" .Values.speaker.membership.existingSecretPreviousKey }}{{ else }}previousKey{{ end }}
{{- end }}

{{/* Flags both components share. */}}
{{- define "ferrolb.commonArgs" -}}
- --mode={{ .Values.mode }}
- --load-balancer-class={{ .Values.loadBalancerClass }}
{{- if .Values.ignoreUnclassed }}
- --ignore-unclassed
{{- end }}
- --log-level={{ .Values.log.level }}
- --log-format={{ .Values.log.format }}
{{- end }}

{{/* Fails the render for values this ferrolb release cannot honour, instead of ignoring them, and for a
release namespace whose Pod Security label would refuse every speaker (known only with a cluster: `helm
template` has none, so lookup finds nothing there). */}}
{{- define "ferrolb.validate" -}}
{{- if and .Values.prometheus.serviceMonitor.enabled .Values.prometheus.podMonitor.enabled }}
{{- fail "prometheus.serviceMonitor.enabled and prometheus.podMonitor.enabled are both true; pick one, or every metric is scraped twice" }}
{{- end }}
{{- $level := include "ferrolb.podSecurityLevel" . }}
{{- if and $level (ne $level "privileged") }}
{{- fail (printf "namespace %s enforces Pod Security level %q, which refuses the speakers (host network, NET_RAW and NET_ADMIN); label it: kubectl label namespace %s pod-security.kubernetes.io/enforce=privileged --overwrite" .Release.Namespace $level .Release.Namespace) }}
{{- end }}
{{- end }}

{{/* The release namespace's pod-security.kubernetes.io/enforce label: "" when it has none or there is no
cluster to ask, "-" when the namespace does not exist yet. */}}
{{- define "ferrolb.podSecurityLevel" -}}
{{- $ns := lookup "v1" "Namespace" "" .Release.Namespace }}
{{- if $ns }}
{{- $labels := $ns.metadata.labels | default dict }}
{{- get $labels "pod-security.kubernetes.io/enforce" }}
{{- end }}
{{- end }}
