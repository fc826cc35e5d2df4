{{/*
The Cluster's name: cluster-<release>, as the pg_basebackup guide's commands show
(kubectl describe cluster cluster-target-db). CloudNativePG wants a DNS-1035 label of at most 50
characters.
*/}}
{{- define "cnpg-database.clusterName" -}}
{{- $name := printf "cluster-%s" .Release.Name -}}
{{- if or (gt (len $name) 50) (not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name)) -}}
{{- fail (printf "the Cluster would be named %q, which is not a valid Cluster name (a DNS-1035 label of at most 50 characters: lowercase letters, digits and \"-\"); choose a shorter release name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "cnpg-database.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The rules of db-refresher's cnpgValuesSchema (and CloudNativePG's webhook) that need more than one
field or a friendlier message than a JSON Schema pattern. Renders nothing; fails on the first problem.
*/}}
{{- define "cnpg-database.validate" -}}
{{- $v := .Values -}}
{{- with $v.imageName -}}
{{- $last := regexReplaceAll "^.*/" . "" -}}
{{- $tag := "" -}}
{{- if contains ":" $last -}}
{{- $tag = regexReplaceAll "@.*$" (regexReplaceAll "^[^:]*:" $last "") "" -}}
{{- end -}}
{{- if eq $tag "" -}}
{{- fail (printf "imageName: %q has no version tag; CloudNativePG needs one such as :16.2-3 to know the PostgreSQL major version" .) -}}
{{- else if eq $tag "latest" -}}
{{- fail (printf "imageName: %q: Can't use 'latest' as image tag as we can't detect upgrades; use a version tag such as :16.2-3" .) -}}
{{- else if not (regexMatch "^[0-9]+(\\.[0-9]+)?" $tag) -}}
{{- fail (printf "imageName: %q: invalid version tag %q; it must start with the PostgreSQL version, e.g. 16.2-3" . $tag) -}}
{{- end -}}
{{- end -}}
{{- $names := list -}}
{{- range $i, $c := $v.externalClusters -}}
{{- if has $c.name $names -}}
{{- fail (printf "externalClusters[%d].name: the list of external clusters contains duplicate values (%q)" $i $c.name) -}}
{{- end -}}
{{- $names = append $names $c.name -}}
{{- if and $c.sslCert (not $c.sslKey) -}}
{{- fail (printf "externalClusters[%d].sslKey: certificate authentication needs both sslCert and sslKey" $i) -}}
{{- end -}}
{{- if and $c.sslKey (not $c.sslCert) -}}
{{- fail (printf "externalClusters[%d].sslCert: certificate authentication needs both sslCert and sslKey" $i) -}}
{{- end -}}
{{- end -}}
{{- $source := required "bootstrapDB.pg_basebackup.source is required: the name of the externalClusters entry to clone" $v.bootstrapDB.pg_basebackup.source -}}
{{- if not (has $source $names) -}}
{{- $quoted := list -}}
{{- range $names }}{{ $quoted = append $quoted (quote .) }}{{ end -}}
{{- fail (printf "bootstrapDB.pg_basebackup.source: External cluster %s not found; externalClusters has %s" $source (join ", " $quoted)) -}}
{{- end -}}
{{- if $v.backup.enabled -}}
{{- fail "backup.enabled: true is not supported: this chart (like db-refresher) configures no object store for backups; a refreshed copy is replaced wholesale, so leave backups off" -}}
{{- end -}}
{{- end -}}
