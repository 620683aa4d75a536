{{- define "required-partial.password" -}}
{{ required "a database password must be given" .Values.db.password }}
{{- end -}}
