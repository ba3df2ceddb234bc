"""Role services: one package per role, all built on the shared role-service core."""
