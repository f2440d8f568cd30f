"use client";
import Link from "next/link";
import { useEffect, useState } from "react";
import { verifyEmailApiV1AuthVerifyEmailPost } from "@/client/sdk.gen.ts";
import { ErrorNotice } from "@/components/ErrorNotice.tsx";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";

/** The link in the signup mail: /verify-email#token=... (the token in the fragment never
 * reaches a server log); this page posts it to the API. */
export default function VerifyEmailPage() {
  const [state, setState] = useState<"working" | "done" | "failed">("working");
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  useEffect(() => {
    const token = new URLSearchParams(window.location.hash.slice(1)).get("token") ?? "";
    history.replaceState(null, "", window.location.pathname);
    call(verifyEmailApiV1AuthVerifyEmailPost({ body: { token } }))
      .then(() => setState("done"))
      .catch((error: unknown) => {
        if (error instanceof ApiFailure) setProblem(error.problem);
        setState("failed");
      });
  }, []);
  return (
    <>
      <h1>Confirm your address</h1>
      {state === "working" ? <p role="status">Confirming…</p> : null}
      {state === "done" ? (
        <p className="notice ok" role="status" data-testid="verified">
          Your address is confirmed. <Link href="/login?verified=1">Log in</Link>.
        </p>
      ) : null}
      {state === "failed" ? <ErrorNotice problem={problem} /> : null}
    </>
  );
}
