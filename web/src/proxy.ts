// Every page gets a fresh nonce and a CSP that allows only scripts carrying it (no
// 'unsafe-inline' for scripts); Next reads the nonce from the request's CSP header and puts
// it on its own script tags. API calls (/api/*) are proxied as they are: the API sets its
// own security headers.
import { NextResponse, type NextRequest } from "next/server";
import { contentSecurityPolicy } from "./lib/csp.ts";

export function proxy(request: NextRequest) {
  const nonce = btoa(crypto.randomUUID());
  const csp = contentSecurityPolicy(nonce, process.env.NODE_ENV === "development");
  const headers = new Headers(request.headers);
  headers.set("x-nonce", nonce);
  headers.set("Content-Security-Policy", csp);
  const response = NextResponse.next({ request: { headers } });
  response.headers.set("Content-Security-Policy", csp);
  response.headers.set("X-Content-Type-Options", "nosniff");
  response.headers.set("Referrer-Policy", "no-referrer");
  response.headers.set("X-Frame-Options", "DENY");
  return response;
}

export const config = {
  matcher: [
    {
      source: "/((?!api/|_next/static|_next/image|favicon.ico).*)",
      missing: [{ type: "header", key: "next-router-prefetch" }],
    },
  ],
};
