// One origin: the browser calls /api/* on the app, and this handler forwards the request to
// the API (RAMPART_API_URL, read at run time, never shipped to the browser). Cookies, the
// CSRF header, Idempotency-Key and trace headers pass through both ways, so the API's
// __Host- cookies are this origin's and CORS never opens.
import type { NextRequest } from "next/server";

export const dynamic = "force-dynamic";

const FORWARDED_REQUEST_HEADERS = [
  "accept",
  "content-type",
  "cookie",
  "idempotency-key",
  "traceparent",
  "user-agent",
  "x-csrf-token",
  // The client's address as the app's server saw it; the API believes it only when the
  // app's address is in its TRUSTED_PROXIES (docs/web.md).
  "x-forwarded-for",
  "x-request-id",
];
// Hop-by-hop, or no longer true once fetch has decoded the body.
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "content-encoding",
  "content-length",
  "keep-alive",
  "transfer-encoding",
]);

function apiBase(): string {
  const base = process.env.RAMPART_API_URL;
  if (!base) throw new Error("RAMPART_API_URL is not set: rampart up sets it");
  return base.replace(/\/$/, "");
}

async function forward(request: NextRequest): Promise<Response> {
  const url = new URL(request.url);
  const target = `${apiBase()}${url.pathname}${url.search}`;
  const headers = new Headers();
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = request.headers.get(name);
    if (value !== null) headers.set(name, value);
  }
  const hasBody = !["GET", "HEAD"].includes(request.method);
  let upstream: Response;
  try {
    upstream = await fetch(target, {
      method: request.method,
      headers,
      body: hasBody ? await request.arrayBuffer() : undefined,
      redirect: "manual",
      cache: "no-store",
    });
  } catch {
    const body = {
      error: {
        code: "api_unreachable",
        message: "The API cannot be reached; retry shortly.",
        trace_id: null,
      },
    };
    return Response.json(body, { status: 502 });
  }
  const out = new Headers();
  upstream.headers.forEach((value, name) => {
    if (!DROPPED_RESPONSE_HEADERS.has(name) && name !== "set-cookie") out.append(name, value);
  });
  for (const cookie of upstream.headers.getSetCookie()) out.append("set-cookie", cookie);
  return new Response(upstream.status === 204 ? null : upstream.body, {
    status: upstream.status,
    headers: out,
  });
}

export const GET = forward;
export const POST = forward;
export const PUT = forward;
export const PATCH = forward;
export const DELETE = forward;
