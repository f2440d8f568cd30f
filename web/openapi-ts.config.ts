// The typed client and its Zod schemas, generated from the API's OpenAPI document
// (`rampart openapi` writes openapi.json from the app, offline). Never edit src/client by
// hand: `make web-client` regenerates it, and `make test` fails when it is stale.
import { defineConfig } from "@hey-api/openapi-ts";

export default defineConfig({
  input: "openapi.json",
  output: { path: "src/client", format: null, lint: null },
  plugins: [
    "@hey-api/client-fetch",
    "@hey-api/typescript",
    "zod",
    { name: "@hey-api/sdk", validator: false },
  ],
});
