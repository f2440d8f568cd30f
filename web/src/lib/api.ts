"use client";
// The generated client, pointed at this origin (the app proxies /api/* to the API). Cookie
// session: the browser sends __Host-session by itself; state-changing requests echo the
// __Host-csrf cookie in X-CSRF-Token (double submit). No token is ever stored by script.
import { client } from "../client/client.gen.ts";
import { problemFrom, type ApiProblem } from "./errors.ts";

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

export function csrfToken(): string | null {
  const match = document.cookie.split("; ").find((c) => c.startsWith("__Host-csrf="));
  return match ? decodeURIComponent(match.slice("__Host-csrf=".length)) : null;
}

client.setConfig({ baseUrl: "", credentials: "same-origin" });
client.interceptors.request.use((request) => {
  if (!SAFE.has(request.method)) {
    const token = csrfToken();
    if (token) request.headers.set("X-CSRF-Token", token);
  }
  return request;
});

export { client };

export class ApiFailure extends Error {
  constructor(readonly problem: ApiProblem) {
    super(problem.message);
  }
}

/** The data of a generated SDK call, or an ApiFailure carrying the envelope. */
export async function call<T>(
  pending: Promise<{ data?: T; error?: unknown; response?: Response }>,
): Promise<T> {
  let result: { data?: T; error?: unknown; response?: Response };
  try {
    result = await pending;
  } catch {
    throw new ApiFailure({
      status: 0,
      code: "network_error",
      message: "The server could not be reached. Check your connection and retry.",
      traceId: null,
      fields: {},
    });
  }
  const response = result.response;
  if (response && response.ok) return result.data as T;
  const status = response?.status ?? 0;
  throw new ApiFailure(problemFrom(status, result.error, response?.headers.get("x-request-id") ?? null));
}
