"""The HTTP face of the controller: the JSON API under /api/, the WebSocket live feed, and the HMI page.

`app` builds the FastAPI application and its core routes; each route group has its module (`batch`,
`operations`, `prompts`, `reports`, `trends`, `live`); `views` and `requests` are the bodies out and in;
`context` is what every route depends on. `page` serves the operator page from the static files in
`hmi/`, shipped in the package, with no build step and nothing fetched from elsewhere.
"""
