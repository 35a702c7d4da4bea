"""HTTP API for duty staff and the public feeds (aiohttp)."""
