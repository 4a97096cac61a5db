"""The API's routers, one module per area; each route parses, calls a service and shapes the answer."""
