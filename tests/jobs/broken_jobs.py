"""A jobs module that fails to import: start-up must stop with one line naming it."""

raise RuntimeError("DATABASE_PASSWORD is not set\n(this second line must not reach the terminal)")
