import type { NextConfig } from "next";

// The API is reached through the app's own origin (src/app/api/[...path]/route.ts proxies
// /api/* to RAMPART_API_URL at run time), so the API's __Host- cookies apply to this
// origin and CORS stays closed. The CSP with a per-request nonce is set in src/proxy.ts.
const config: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  // Source maps ship with the build so the bundle scan (rampart web-scan) reads them too.
  productionBrowserSourceMaps: true,
  typescript: { ignoreBuildErrors: false },
};

export default config;
