"""The operator console: meter management, Confirm support, provider health, routing preferences, audit."""
