// The Content-Security-Policy of every page (src/proxy.ts adds a fresh nonce per request):
// scripts only from this origin and only those carrying the nonce; no 'unsafe-inline' for
// scripts ('unsafe-eval' only in `next dev`, which needs it for hot reload).
export function contentSecurityPolicy(nonce: string, dev: boolean): string {
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ""}`,
    // Styles: the app's stylesheet, and Next's small inline style blocks.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}
