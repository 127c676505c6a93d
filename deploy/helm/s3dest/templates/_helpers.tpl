{{- define "s3dest.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "s3dest.labels" -}}
app.kubernetes.io/name: s3dest
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The selector of one service's pods: (dict "root" $ "component" "copier"). */}}
{{- define "s3dest.selector" -}}
app.kubernetes.io/name: s3dest
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "s3dest.serviceAccountName" -}}
{{- default (include "s3dest.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "s3dest.secretName" -}}
{{- default (include "s3dest.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The NATS URLs the services dial: natsClient.url, or the chart's NATS Service. */}}
{{- define "s3dest.natsURL" -}}
{{- if .Values.natsClient.url -}}{{ .Values.natsClient.url }}
{{- else if .Values.nats.enabled -}}{{ printf "%s://%s-nats:4222" (ternary "tls" "nats" .Values.natsClient.tls.enabled) .Release.Name }}
{{- else -}}{{ fail "natsClient.url: must be set when nats.enabled is false" }}
{{- end -}}
{{- end -}}

{{/* The secret keys each service reads, and nothing else: the admin token only in admin, the
credentials key only in the copier. */}}
{{- define "s3dest.secretKeys" -}}
{{- $keys := dict "ingest" (list) "batcher" (list "redis-url") "stager" (list) "copier" (list "credentials-key" "redis-url") "validator" (list "validator-token") "admin" (list "admin-token" "validator-token" "redis-url") -}}
{{- $own := get $keys .component -}}
{{- if .root.Values.natsClient.auth.enabled -}}{{- $own = append $own "nats-creds" -}}{{- end -}}
{{- toJson $own -}}
{{- end -}}

{{/* The flags of one service: the shared ones, then its own (docs/configuration.md names them all). */}}
{{- define "s3dest.args" -}}
{{- $v := .root.Values -}}
{{- $s := $v.settings -}}
{{- $c := .component -}}
- --nats-url={{ include "s3dest.natsURL" .root }}
- --replicas={{ $s.replicas }}
- --partitions={{ $s.partitions }}
- --log-level={{ $s.logLevel }}
- --ops-addr=:{{ $v.ports.ops }}
{{- if $v.natsClient.auth.enabled }}
- --nats-creds=/etc/s3dest/secrets/nats-creds
{{- end }}
{{- if $v.natsClient.tls.enabled }}
- --nats-ca=/etc/s3dest/nats-tls/ca.crt
{{- end }}
{{- if has $c (list "stager" "copier" "validator") }}
- --aws-region={{ $s.awsRegion }}
{{- end }}
{{- if has $c (list "copier" "validator" "admin") }}
- --intermediate-role-arn={{ $s.intermediateRoleArn }}
{{- end }}
{{- if has $c (list "stager" "copier" "admin") }}
- --staging-bucket={{ $s.stagingBucket }}
{{- end }}
{{- if has $c (list "copier" "admin") }}
- --own-buckets={{ $s.ownBuckets }}
- --enable-legacy-s3={{ $s.enableLegacyS3 }}
{{- end }}
{{- range $key := include "s3dest.secretKeys" . | fromJsonArray }}
{{- if ne $key "nats-creds" }}
- --{{ $key }}-file=/etc/s3dest/secrets/{{ $key }}
{{- end }}
{{- end }}
{{- if eq $c "ingest" }}
- --tracking-addr=:{{ $v.ports.tracking }}
{{- else if eq $c "validator" }}
- --validator-grpc-addr=:{{ $v.ports.validatorGrpc }}
{{- else if eq $c "admin" }}
- --admin-addr=:{{ $v.ports.adminHttp }}
- --admin-grpc-addr=:{{ $v.ports.adminGrpc }}
- --validator-addr={{ include "s3dest.fullname" .root }}-validator:{{ $v.ports.validatorGrpc }}
- --retention={{ $s.retention }}
{{- end }}
{{- range (get $v.services $c).extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}
