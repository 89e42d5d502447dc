"""The terminal side: the `tokenhub keys` CLI and its admin-API client."""
