"""The HTTP API (FastAPI): it enqueues and reads; it never processes jobs. `envoi.api.app.create_app`
builds the application."""
