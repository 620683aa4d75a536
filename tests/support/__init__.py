"""Real-part test helpers: a docker-registry process, small OCI images, skopeo."""
