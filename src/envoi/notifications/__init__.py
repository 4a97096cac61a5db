"""Notifications: job models (`jobs`), their handlers (`handlers`), the product's flows (`service`),
rendering and templates, reminders, and the in-app inbox. `envoi.runtime` wires them."""
