"""TokenHub proxy: the aiohttp server in front of OpenAI-compatible providers."""
