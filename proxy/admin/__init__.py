"""The admin side: the REST API, its wire shapes and OpenAPI document, the API Keys page."""
