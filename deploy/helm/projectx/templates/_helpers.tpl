{{/*
Names, labels and the pod parts every role shares: the environment (plain values from .Values.env, every
secret variable from the Secret), the image, the security contexts and the evidence volume.
*/}}

{{- define "projectx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "projectx.fullname" -}}
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

{{- define "projectx.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "projectx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "projectx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "projectx.labels" -}}
helm.sh/chart: {{ include "projectx.chart" . }}
{{ include "projectx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "projectx.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "projectx.secretName" -}}
{{- default (printf "%s-secrets" (include "projectx.fullname" .)) .Values.secret.existingSecret }}
{{- end }}

{{/* The HTTP port: PORT from env, the one number the container port, probes and Services use. */}}
{{- define "projectx.port" -}}
{{- required "env.PORT is required (the service's HTTP port)" .Values.env.PORT }}
{{- end }}

{{/*
The environment of every container. Plain values from .Values.env (empty ones left out, so the service's
default applies); every secret variable only through secretKeyRef, optional unless listed in secret.required.
*/}}
{{- define "projectx.env" -}}
{{- range $name, $value := .Values.env }}
{{- if has $name $.Values.secret.variables }}
{{- fail (printf "env.%s is a secret variable: put it in the Secret (secret.existingSecret or secret.values), not in env" $name) }}
{{- end }}
{{- if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- $secretName := include "projectx.secretName" . }}
{{- range $name := .Values.secret.variables }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $name }}
      optional: {{ not (has $name $.Values.secret.required) }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Roll the pods when the chart-created Secret changes (an existing Secret is yours to roll). */}}
{{- define "projectx.podAnnotations" -}}
{{- if not .Values.secret.existingSecret }}
checksum/secret: {{ toJson .Values.secret.values | sha256sum }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The shutdown budget must fit in the grace period, or Kubernetes kills a pod that is still draining. */}}
{{- define "projectx.checkShutdown" -}}
{{- $shutdownMs := int (default "9000" .Values.env.SHUTDOWN_TIMEOUT_MS) }}
{{- if lt (int (mul .Values.web.terminationGracePeriodSeconds 1000)) (int (add $shutdownMs (mul .Values.web.preStopSleepSeconds 1000) 1000)) }}
{{- fail "web.terminationGracePeriodSeconds must exceed web.preStopSleepSeconds + SHUTDOWN_TIMEOUT_MS/1000 + 1" }}
{{- end }}
{{- if lt (int (mul .Values.worker.terminationGracePeriodSeconds 1000)) (int (add $shutdownMs 1000)) }}
{{- fail "worker.terminationGracePeriodSeconds must exceed SHUTDOWN_TIMEOUT_MS/1000 + 1" }}
{{- end }}
{{- end }}

{{- define "projectx.evidenceVolume" -}}
- name: evidence
{{- if .Values.evidence.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-evidence" (include "projectx.fullname" .)) .Values.evidence.persistence.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "projectx.volumeMounts" -}}
- name: evidence
  mountPath: {{ required "env.EVIDENCE_LOCAL_DIR is required (where the evidence volume is mounted)" .Values.env.EVIDENCE_LOCAL_DIR }}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the Deployments and the migration Job. */}}
{{- define "projectx.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
