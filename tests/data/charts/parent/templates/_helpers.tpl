{{- define "parent.image" -}}
registry.example/parent:1.0
{{- end -}}
