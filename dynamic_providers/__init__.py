"""Python dynamic providers: keycloak/, ziti/, spire/ (client.py, models.py, provider.py each)."""
