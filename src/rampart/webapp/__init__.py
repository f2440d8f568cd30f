"""The web app's Python side: the OpenAPI document its client is generated from, building
and serving `web/` (Next.js) under `rampart up`, and the scan of its built bundle for
secrets (docs/web.md)."""
